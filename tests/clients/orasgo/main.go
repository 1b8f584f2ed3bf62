// The Go row of the client matrix (tests/clients.rs): Debian's oras-go v1
// (golang-oras-oras-go-dev, which pushes and pulls through containerd's docker
// resolver) and Go's own HTTP/2 client, against a registry over HTTPS.
//
//	orasgo HOST:PORT USER PASSWORD LAYOUT_DIR PREFIX
//
// The CA comes from SSL_CERT_FILE (Go's standard way), so TLS is verified. LAYOUT_DIR is
// an OCI layout with a two-platform index (ref name `multi`). Each step checks its
// outcome; the last line printed is a JSON summary with a result per step and the HTTP
// protocol of every answer, which must all be HTTP/2.0. Built in GOPATH mode against
// /usr/share/gocode, so it needs no module proxy.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/remotes/docker"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/pkg/content"
	"oras.land/oras-go/pkg/oras"
	"oras.land/oras-go/pkg/registry/remote"
	"oras.land/oras-go/pkg/registry/remote/auth"
)

const artifactType = "application/vnd.edgeyard.test.sbom"

var tags = []string{"t1", "t2", "t3", "t4", "t5"}

// recorder notes the protocol of every answer and every HEAD answer that carried a body.
type recorder struct {
	base   http.RoundTripper
	mu     sync.Mutex
	protos map[string]int
	heads  []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.protos[resp.Proto]++
	r.mu.Unlock()
	if req.Method == http.MethodHead {
		// A HEAD answer has no body. Over HTTP/2 a DATA frame on a HEAD stream is a
		// protocol error, which Go reports when the body is read.
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(b) > 0 || rerr != nil {
			r.mu.Lock()
			r.heads = append(r.heads, fmt.Sprintf("HEAD %s -> %d: body %d bytes, read error %v", req.URL.Path, resp.StatusCode, len(b), rerr))
			r.mu.Unlock()
		}
		resp.Body = io.NopCloser(bytes.NewReader(nil))
	}
	return resp, nil
}

var (
	steps = map[string]string{}
	goLog syncBuffer
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func step(name string, fn func() error) {
	if err := fn(); err != nil {
		steps[name] = err.Error()
	} else {
		steps[name] = "ok"
	}
}

func main() {
	host, user, password, layout, prefix := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Go's HTTP/2 client reports protocol errors it recovers from only through package log.
	log.SetOutput(io.MultiWriter(os.Stderr, &goLog))
	rec := &recorder{base: http.DefaultTransport, protos: map[string]int{}}
	http.DefaultClient.Transport = rec
	http.DefaultClient.Timeout = time.Minute
	// oras-go's registry target, built as content.NewRegistry builds it but with HTTPS for
	// every host: containerd's default resolver speaks plain HTTP to 127.0.0.1.
	creds := func(string) (string, string, error) { return user, password, nil }
	reg := &content.Registry{Resolver: docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithClient(http.DefaultClient),
			docker.WithPlainHTTP(func(string) (bool, error) { return false, nil }),
			docker.WithAuthorizer(docker.NewDockerAuthorizer(
				docker.WithAuthClient(http.DefaultClient), docker.WithAuthCreds(creds))),
		),
	})}
	// The same client, with oras-go's token auth, for what the resolver cannot do.
	client := &auth.Client{
		Client: http.DefaultClient,
		Cache:  auth.NewCache(),
		Credential: func(ctx context.Context, reg string) (auth.Credential, error) {
			return auth.Credential{Username: user, Password: password}, nil
		},
	}
	app := host + "/" + prefix + "/app"
	base := "https://" + host + "/v2/" + prefix + "/app"
	summary := map[string]interface{}{}

	// push: one manifest per tag over the same layer and config.
	layer := bytes.Repeat([]byte("edgeyard oras-go layer\n"), 10000)
	manifests := map[string]ocispec.Descriptor{}
	step("push", func() error {
		mem := content.NewMemory()
		ld, err := mem.Add("layer.txt", "application/vnd.oci.image.layer.v1.tar", layer)
		if err != nil {
			return err
		}
		cfg, cd, err := content.GenerateConfig(nil)
		if err != nil {
			return err
		}
		mem.Set(cd, cfg)
		for i, tag := range tags {
			m, md, err := content.GenerateManifest(&cd, map[string]string{"edgeyard.test.n": fmt.Sprint(i)}, ld)
			if err != nil {
				return err
			}
			if err := mem.StoreManifest(tag, md, m); err != nil {
				return err
			}
			got, err := oras.Copy(ctx, mem, tag, reg, app+":"+tag)
			if err != nil {
				return fmt.Errorf("copy %s: %w", tag, err)
			}
			manifests[tag] = got
		}
		summary["manifest"] = manifests["t1"].Digest.String()
		return nil
	})

	step("pull", func() error {
		// resolve (HEAD on the manifest), then copy everything into memory.
		_, desc, err := reg.Resolve(ctx, app+":t1")
		if err != nil {
			return err
		}
		if desc.Digest != manifests["t1"].Digest {
			return fmt.Errorf("resolved %s, pushed %s", desc.Digest, manifests["t1"].Digest)
		}
		mem := content.NewMemory()
		if _, err := oras.Copy(ctx, reg, app+":t1", mem, "t1"); err != nil {
			return err
		}
		_, got, ok := mem.GetByName("layer.txt")
		if !ok || !bytes.Equal(got, layer) {
			return fmt.Errorf("layer not pulled back byte-equal (found %v, %d bytes)", ok, len(got))
		}
		return nil
	})

	step("tags", func() error {
		repo, err := remote.NewRepository(app)
		if err != nil {
			return err
		}
		repo.Client = client
		repo.TagListPageSize = 2
		var got []string
		pages := 0
		err = repo.Tags(ctx, func(t []string) error {
			pages++
			got = append(got, t...)
			return nil
		})
		if err != nil {
			return err
		}
		if strings.Join(got, ",") != strings.Join(tags, ",") || pages != 3 {
			return fmt.Errorf("tags %v in %d pages, want %v in 3", got, pages, tags)
		}
		return nil
	})

	step("index", func() error {
		// copy the whole multi-arch index out of the OCI layout, then resolve it back.
		src, err := content.NewOCI(layout)
		if err != nil {
			return err
		}
		desc, err := oras.Copy(ctx, src, "multi", reg, host+"/"+prefix+"/multi:v1")
		if err != nil {
			return err
		}
		_, got, err := reg.Resolve(ctx, host+"/"+prefix+"/multi:v1")
		if err != nil {
			return err
		}
		if got.Digest != desc.Digest || got.MediaType != ocispec.MediaTypeImageIndex {
			return fmt.Errorf("resolved %s (%s), copied %s", got.Digest, got.MediaType, desc.Digest)
		}
		summary["index"] = desc.Digest.String()
		return nil
	})

	step("catalog", func() error {
		// no catalog API in oras-go v1: its auth client, one repository per page.
		var repos []string
		next := "/v2/_catalog?n=1"
		for next != "" {
			resp, err := get(ctx, client, "https://"+host+next, "")
			if err != nil {
				return err
			}
			var page struct {
				Repositories []string `json:"repositories"`
			}
			if err := json.Unmarshal(resp.body, &page); err != nil {
				return err
			}
			repos = append(repos, page.Repositories...)
			next = linkNext(resp.header.Get("Link"))
		}
		sort.Strings(repos)
		want := []string{prefix + "/app", prefix + "/multi"}
		for _, w := range want {
			i := sort.SearchStrings(repos, w)
			if i == len(repos) || repos[i] != w {
				return fmt.Errorf("catalog %v lacks %s", repos, w)
			}
		}
		return nil
	})

	step("referrer", func() error {
		// an OCI 1.1 artifact: artifactType, empty config, subject t1; pushed with the
		// resolver, discovered with the referrers API.
		mem := content.NewMemory()
		empty := []byte("{}")
		ed := ocispec.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: digest.FromBytes(empty), Size: 2}
		mem.Set(ed, empty)
		note, err := mem.Add("sbom.txt", "text/plain", []byte("sbom of t1\n"))
		if err != nil {
			return err
		}
		t1 := manifests["t1"]
		art, err := json.Marshal(map[string]interface{}{
			"schemaVersion": 2,
			"mediaType":     ocispec.MediaTypeImageManifest,
			"artifactType":  artifactType,
			"config":        ed,
			"layers":        []ocispec.Descriptor{note},
			"subject":       ocispec.Descriptor{MediaType: t1.MediaType, Digest: t1.Digest, Size: t1.Size},
		})
		if err != nil {
			return err
		}
		ad := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(art), Size: int64(len(art))}
		if err := mem.StoreManifest("sbom", ad, art); err != nil {
			return err
		}
		if _, err := oras.Copy(ctx, mem, "sbom", reg, app+":sbom"); err != nil {
			return err
		}
		summary["artifact"] = ad.Digest.String()
		resp, err := get(ctx, client, base+"/referrers/"+t1.Digest.String(), ocispec.MediaTypeImageIndex)
		if err != nil {
			return err
		}
		var idx struct {
			Manifests []ocispec.Descriptor `json:"manifests"`
		}
		if err := json.Unmarshal(resp.body, &idx); err != nil {
			return err
		}
		if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != ad.Digest || idx.Manifests[0].ArtifactType != artifactType {
			return fmt.Errorf("referrers %s, want %s (%s)", resp.body, ad.Digest, artifactType)
		}
		return nil
	})

	step("delete", func() error {
		t5 := manifests["t5"].Digest.String()
		req, _ := http.NewRequestWithContext(withScope(ctx, prefix+"/app", "delete"), http.MethodDelete, base+"/manifests/"+t5, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("DELETE manifest: %s", resp.Status)
		}
		// HEAD, as the resolver does it: the manifest is gone, by tag and by digest.
		for _, ref := range []string{"t5", t5} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodHead, base+"/manifests/"+ref, nil)
			req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				return fmt.Errorf("HEAD %s after delete: %s", ref, resp.Status)
			}
		}
		return nil
	})

	step("head", func() error {
		// HEAD a blob that exists and one that does not; neither answer may carry a body.
		for _, c := range []struct {
			path string
			want int
		}{
			{"/blobs/" + digest.FromBytes(layer).String(), http.StatusOK},
			{"/blobs/" + digest.FromString("absent").String(), http.StatusNotFound},
			{"/manifests/absent", http.StatusNotFound},
		} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodHead, base+c.path, nil)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				return fmt.Errorf("HEAD %s: %s, want %d", c.path, resp.Status, c.want)
			}
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.heads) > 0 {
			return fmt.Errorf("HEAD answers with a body: %s", strings.Join(rec.heads, "; "))
		}
		// Go's HTTP/2 client drops a DATA frame on a HEAD stream and only logs it.
		if n := strings.Count(goLog.String(), "received DATA on a HEAD request"); n > 0 {
			return fmt.Errorf("Go's HTTP/2 client logged %d times: protocol error: received DATA on a HEAD request", n)
		}
		return nil
	})

	summary["steps"] = steps
	summary["protocols"] = rec.protos
	out, _ := json.Marshal(summary)
	fmt.Println(string(out))
	for _, v := range steps {
		if v != "ok" {
			os.Exit(1)
		}
	}
}

type answer struct {
	header http.Header
	body   []byte
}

// get sends a GET through the auth client and wants 200.
func get(ctx context.Context, c *auth.Client, url, accept string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return answer{}, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return answer{}, fmt.Errorf("GET %s: %s: %s", req.URL.Path, resp.Status, body)
	}
	return answer{header: resp.Header, body: body}, nil
}

// linkNext is the path of a `Link: <...>; rel="next"` header, or "".
func linkNext(link string) string {
	if link == "" {
		return ""
	}
	i, j := strings.Index(link, "<"), strings.Index(link, ">")
	if i < 0 || j < i {
		return ""
	}
	return link[i+1 : j]
}

// withScope asks the auth client for a token with `actions` on `repo` up front.
func withScope(ctx context.Context, repo string, actions ...string) context.Context {
	return auth.WithScopes(ctx, auth.ScopeRepository(repo, actions...))
}

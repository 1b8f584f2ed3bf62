"""The Python rows of the client matrix (tests/clients.rs): oras-py and python-dxf, from
PyPI, against a registry over HTTPS that verifies the registry's CA and logs in.

    python pyclients.py oras|dxf HOST:PORT CA_FILE USER PASSWORD LAYOUT_DIR WORK_DIR PREFIX AUTH

LAYOUT_DIR is an OCI layout with a two-platform index (ref name `multi`) written by the
Rust test. Every step checks its outcome (bytes, digests, lists) and raises on a
mismatch; the last line printed is a JSON summary the Rust test checks against the
registry's own answers. Repositories are PREFIX/app, PREFIX/multi. AUTH is `token` (the
registry token flow, as edgeyard and docker do it) or `basic` (CNCF Distribution with an
htpasswd file, whose `Basic` challenge oras-py's token backend cannot follow);
python-dxf follows either challenge by itself.
"""

import hashlib
import json
import os
import sys
import urllib.parse

ARTIFACT_TYPE = "application/vnd.edgeyard.test.sbom"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_CONFIG = b"{}"
EMPTY_MEDIA = "application/vnd.oci.empty.v1+json"
TAGS = ["t1", "t2", "t3", "t4", "t5"]


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def chunks(b, size=1 << 20):
    """A generator of pieces of `b` (python-dxf uploads an iterable chunk by chunk; a list
    would be taken for form fields by requests)."""
    return (b[i:i + size] for i in range(0, len(b), size))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


STEPS = {}


class step:
    """One cell of the matrix row: records "ok" or what went wrong (with the registry's
    answer for an HTTP error) and lets the row go on with the next step."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None:
            STEPS[self.name] = "ok"
        else:
            resp = getattr(err, "response", None)
            extra = ""
            if resp is not None:
                extra = f" [{resp.status_code} {resp.request.method} {resp.url}: {resp.text[:300]}]"
            STEPS[self.name] = f"{type(err).__name__}: {err}{extra}"
        return True


def layout_blobs(layout):
    """(index bytes, {digest: bytes}) of the layout's `multi` image."""
    with open(os.path.join(layout, "index.json"), "rb") as f:
        top = json.load(f)
    idx_digest = top["manifests"][0]["digest"]

    def blob(d):
        with open(os.path.join(layout, "blobs", "sha256", d.split(":", 1)[1]), "rb") as f:
            return f.read()

    return idx_digest, blob


def image_manifest(config, layer, n):
    """One OCI image manifest per tag (an annotation tells them apart), as exact bytes."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha256(layer), "size": len(layer)}],
            "annotations": {"edgeyard.test.n": str(n)},
        },
        separators=(",", ":"),
    ).encode()


def artifact_manifest(subject_digest, subject_size, blob):
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": EMPTY_MEDIA, "digest": sha256(EMPTY_CONFIG), "size": 2},
            "layers": [{"mediaType": "text/plain", "digest": sha256(blob), "size": len(blob)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest,
                        "size": subject_size},
        },
        separators=(",", ":"),
    ).encode()


# ---------------------------------------------------------------------------------------
# python-dxf
# ---------------------------------------------------------------------------------------
def run_dxf(host, ca, user, password, layout, work, prefix, auth_mode):
    import dxf

    def auth(d, response):
        d.authenticate(user, password, response=response)

    def repo(name):
        return dxf.DXF(host, f"{prefix}/{name}", auth=auth, tlsverify=ca, timeout=60)

    app = repo("app")
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = os.urandom(300_000)
    manifests = {n: image_manifest(config, layer, i) for i, n in enumerate(TAGS)}
    t1 = sha256(manifests["t1"])
    with step("push"):
        # blobs (uploaded chunk by chunk), then one manifest per tag.
        check(app.push_blob(data=chunks(config), digest=sha256(config)) == sha256(config),
              "config digest")
        check(app.push_blob(data=chunks(layer, 100_000), digest=sha256(layer)) == sha256(layer),
              "layer digest")
        for tag in TAGS:
            app.set_manifest(tag, manifests[tag].decode())
    with step("pull"):
        got, resp = app.get_manifest_and_response("t1")
        check(got.encode() == manifests["t1"], "manifest bytes")
        check(resp.headers.get("Docker-Content-Digest") == t1, "manifest digest header")
        check(b"".join(app.pull_blob(sha256(layer))) == layer, "layer bytes")
        check(app.blob_size(sha256(layer)) == len(layer), "HEAD blob size")
    with step("tags"):
        # two per page: the client follows the Link header.
        tags = app.list_aliases(batch_size=2)
        check(tags == TAGS, f"tags in pages of 2: {tags}")
    idx_digest, blob = layout_blobs(layout)
    index = blob(idx_digest)
    with step("index"):
        # multi-arch index copy, byte for byte (set_manifest sends the exact string).
        multi = repo("multi")
        for child in json.loads(index)["manifests"]:
            cm = json.loads(blob(child["digest"]))
            for d in [cm["config"]["digest"]] + [x["digest"] for x in cm["layers"]]:
                multi.push_blob(data=chunks(blob(d)), digest=d)
            multi.set_manifest(child["digest"], blob(child["digest"]).decode())
        multi.set_manifest("v1", index.decode())
        got, resp = multi.get_manifest_and_response("v1")
        check(got.encode() == index, "index bytes")
        check(resp.headers.get("Docker-Content-Digest") == idx_digest, "index digest")
        # dxf picks a platform from the index, as a pull would.
        arm = [c for c in json.loads(index)["manifests"]
               if c["platform"]["architecture"] == "arm64"][0]
        want = json.loads(blob(arm["digest"]))["config"]["digest"]
        got = multi.get_digest("v1", platform="linux/arm64")
        check(got == want, f"arm64 config digest {got}, want {want}")
    with step("mount"):
        # a cross-repository mount: the token must cover the source repository too, so
        # the challenge has to name it (repository:<from>:pull).
        other = repo("mounted")
        check(other.mount_blob(f"{prefix}/app", sha256(layer)) == sha256(layer), "mount")
        check(other.blob_size(sha256(layer)) == len(layer), "HEAD mounted blob")
    with step("catalog"):
        # one repository per page (Link header).
        base = dxf.DXFBase(host, auth=auth, tlsverify=ca, timeout=60)
        repos = base.list_repos(batch_size=1)
        check(f"{prefix}/app" in repos and f"{prefix}/multi" in repos, f"catalog {repos}")
    note = b"sbom of t1\n"
    art = artifact_manifest(t1, len(manifests["t1"]), note)
    with step("referrer"):
        # an artifact with artifactType and a subject; discovery has no dxf API, so it is
        # GET /v2/<name>/referrers/<digest> through the client's authenticated session.
        app.push_blob(data=chunks(EMPTY_CONFIG), digest=sha256(EMPTY_CONFIG))
        app.push_blob(data=chunks(note), digest=sha256(note))
        app.set_manifest(sha256(art), art.decode())
        r = app._request("get", "referrers/" + t1, headers={"Accept": OCI_INDEX})
        refs = [(x["digest"], x.get("artifactType")) for x in r.json()["manifests"]]
        check(refs == [(sha256(art), ARTIFACT_TYPE)], f"referrers {refs}")
    with step("delete"):
        # a tag's manifest (by the digest the client resolves), then a blob.
        app.del_alias("t5")
        left = app.list_aliases()
        check(sorted(left) == TAGS[:4], f"tags after delete: {left}")
        app.push_blob(data=chunks(note), digest=sha256(note))
        app.del_blob(sha256(note))
        try:
            app.blob_size(sha256(note))
            raise AssertionError("the deleted blob is still there")
        except dxf.requests.exceptions.HTTPError as e:
            check(e.response.status_code == 404, f"deleted blob: {e}")
    return {"manifest": t1, "index": idx_digest, "artifact": sha256(art)}


# ---------------------------------------------------------------------------------------
# oras-py
# ---------------------------------------------------------------------------------------
def run_oras(host, ca, user, password, layout, work, prefix, auth_mode):
    import oras.client
    import oras.oci
    import oras.provider

    # oras-py retries every failed request five times, sleeping 3, 5, 11, 29 and 83 s: the
    # matrix wants the registry's first answer, in bounded time, so the retry loop goes.
    oras.provider.Registry.do_request = oras.provider.Registry.do_request.__wrapped__
    client = oras.client.OrasClient(hostname=host, tls_verify=ca, auth_backend=auth_mode)
    client.login(username=user, password=password, hostname=host,
                 config_path=os.path.join(work, "oras-config.json"))
    os.chdir(work)  # oras-py pushes files relative to the working directory
    payload = os.urandom(250_000)
    with open("payload.bin", "wb") as f:
        f.write(payload)
    pushed = {}
    with step("push"):
        # one artifact per tag (an annotation tells them apart).
        for n, tag in enumerate(TAGS):
            r = client.push(target=f"{host}/{prefix}/app:{tag}", files=["payload.bin"],
                            manifest_annotations={"edgeyard.test.n": str(n)}, quiet=True)
            check(r.status_code == 201, f"push {tag}: {r.status_code}")
            pushed[tag] = r.headers.get("Docker-Content-Digest")
    with step("pull"):
        files = client.pull(target=f"{host}/{prefix}/app:t1", outdir=os.path.join(work, "out"))
        check(len(files) == 1, f"pulled {files}")
        with open(files[0], "rb") as f:
            check(f.read() == payload, "pulled bytes")
        manifest = client.get_manifest(f"{host}/{prefix}/app:t1")
        check(manifest["annotations"]["edgeyard.test.n"] == "0", f"manifest {manifest}")
    with step("tags"):
        # two per page, with the client's own Link-following pager.
        container = client.get_container(f"{host}/{prefix}/app")
        tags = []

        def collect(resp):
            tags.extend(resp.json().get("tags") or [])
            return True

        client._do_paginated_request(f"https://{container.tags_url(N=2)}", callable=collect)
        check(tags == TAGS, f"tags in pages of 2: {tags}")
    idx_digest, blob = layout_blobs(layout)
    index = blob(idx_digest)
    with step("index"):
        # blobs with upload_blob; manifests byte for byte through the client's
        # authenticated request (upload_manifest would re-serialise the JSON).
        multi = client.get_container(f"{host}/{prefix}/multi:v1")

        def put_manifest(ref, body, media_type):
            r = client.do_request(f"https://{multi.manifest_url(ref)}", "PUT", data=body,
                                  headers={"Content-Type": media_type})
            check(r.status_code == 201, f"PUT manifest {ref}: {r.status_code} {r.text}")

        for child in json.loads(index)["manifests"]:
            cm = json.loads(blob(child["digest"]))
            for desc in [cm["config"]] + cm["layers"]:
                path = os.path.join(layout, "blobs", "sha256", desc["digest"].split(":", 1)[1])
                r = client.upload_blob(path, multi, dict(desc))
                check(r.status_code in (200, 201), f"upload {desc['digest']}: {r.status_code}")
            put_manifest(child["digest"], blob(child["digest"]), OCI_MANIFEST)
        put_manifest("v1", index, OCI_INDEX)
        got = client.get_manifest(f"{host}/{prefix}/multi:v1", allowed_media_type=[OCI_INDEX])
        check(got == json.loads(index), "index read back")
    with step("catalog"):
        repos = []

        def collect_repos(resp):
            repos.extend(resp.json().get("repositories") or [])
            return True

        client._do_paginated_request(f"https://{host}/v2/_catalog?n=1", callable=collect_repos)
        check(f"{prefix}/app" in repos and f"{prefix}/multi" in repos, f"catalog {repos}")
    art = None
    with step("referrer"):
        # oras-py has no artifactType argument: the config's media type stands for it, and
        # the spec has the registry report it as the referrer's artifactType.
        with open("sbom.txt", "wb") as f:
            f.write(b"sbom of t1\n")
        with open("config.json", "wb") as f:
            f.write(EMPTY_CONFIG)
        c = client.get_container(f"{host}/{prefix}/app:t1")
        r = client.do_request(f"https://{c.manifest_url()}", "HEAD",
                              headers={"Accept": OCI_MANIFEST})
        check(r.status_code == 200 and r.headers.get("Docker-Content-Digest") == pushed["t1"],
              f"HEAD t1: {r.status_code} {dict(r.headers)}")
        subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=pushed["t1"],
                                   size=int(r.headers["Content-Length"]))
        r = client.push(target=f"{host}/{prefix}/app:sbom", files=["sbom.txt:text/plain"],
                        manifest_config=f"config.json:{ARTIFACT_TYPE}", subject=subject,
                        quiet=True)
        check(r.status_code == 201, f"push artifact: {r.status_code}")
        art = r.headers.get("Docker-Content-Digest")
        r = client.do_request(f"https://{host}/v2/{prefix}/app/referrers/{pushed['t1']}", "GET",
                              headers={"Accept": OCI_INDEX})
        check(r.status_code == 200, f"referrers: {r.status_code} {r.text}")
        refs = [(x["digest"], x.get("artifactType")) for x in r.json()["manifests"]]
        check(refs == [(art, ARTIFACT_TYPE)], f"referrers {refs}, want {art}")
    with step("delete"):
        # HEAD for the tag's digest, then DELETE the manifest by digest.
        check(client.delete_tag(f"{host}/{prefix}/app", "t5") is True, "delete t5")
        left = client.get_tags(f"{host}/{prefix}/app")
        check("t5" not in left and set(TAGS[:4]) <= set(left), f"tags after delete {left}")
    return {"manifest": pushed.get("t1"), "index": idx_digest, "artifact": art}


def main():
    which, host, ca, user, password, layout, work, prefix, auth_mode = sys.argv[1:10]
    fn = {"oras": run_oras, "dxf": run_dxf}[which]
    summary = fn(host, ca, user, password, layout, work, prefix, auth_mode)
    summary["steps"] = STEPS
    print(json.dumps(summary))
    sys.exit(0 if all(v == "ok" for v in STEPS.values()) else 1)


if __name__ == "__main__":
    main()

//! Slow storage for the benchmark: loaded into edgeyard with `LD_PRELOAD`, it delays every
//! `fsync` and `fdatasync` by `EDGEYARD_BENCH_FSYNC_MS` milliseconds before making the real
//! system call, as the SD cards and eMMC of edge boxes do (tens of milliseconds per flush).
//! The host here has no device-mapper (no `dm-delay`) and no writable I/O cgroup, so the
//! delay is put where the process asks for durability. Everything else (writes, reads,
//! `sync_file_range`) goes straight to the kernel.

use std::sync::OnceLock;
use std::time::Duration;

fn delay() -> Duration {
    static DELAY: OnceLock<Duration> = OnceLock::new();
    *DELAY.get_or_init(|| {
        let ms = std::env::var("EDGEYARD_BENCH_FSYNC_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        Duration::from_millis(ms)
    })
}

/// # Safety
/// Called as libc's `fsync`: any file descriptor, as the kernel's call takes.
#[no_mangle]
pub unsafe extern "C" fn fsync(fd: libc::c_int) -> libc::c_int {
    std::thread::sleep(delay());
    libc::syscall(libc::SYS_fsync, fd) as libc::c_int
}

/// # Safety
/// Called as libc's `fdatasync`: any file descriptor, as the kernel's call takes.
#[no_mangle]
pub unsafe extern "C" fn fdatasync(fd: libc::c_int) -> libc::c_int {
    std::thread::sleep(delay());
    libc::syscall(libc::SYS_fdatasync, fd) as libc::c_int
}

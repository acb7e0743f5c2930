//! `ferry-measure REPORT LIMIT_MS PROGRAM [ARGS…]`: runs PROGRAM (stdio
//! inherited), kills it after LIMIT_MS, and writes its wait status, peak
//! RSS and wall time to REPORT as `status=<raw|killed> maxrss_kib=<n>
//! wall_ms=<n>`.
//!
//! The tests measure a child's peak memory through this small process
//! rather than directly: Linux counts the memory of the process that
//! spawned a child into the child's `ru_maxrss` (the address space it
//! execs from), and the test binary is hundreds of megabytes. Spawned from
//! here, a child starts from a few.

use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(report), Some(limit), Some(program)) = (args.first(), args.get(1), args.get(2))
    else {
        eprintln!("usage: ferry-measure REPORT LIMIT_MS PROGRAM [ARGS…]");
        return std::process::ExitCode::from(2);
    };
    let Ok(limit) = limit.parse::<u64>() else {
        eprintln!("ferry-measure: LIMIT_MS is not a number: {limit}");
        return std::process::ExitCode::from(2);
    };
    let started = Instant::now();
    let child = match Command::new(program).args(&args[3..]).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferry-measure: cannot start {program}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let Ok(pid) = i32::try_from(child.id()) else {
        return std::process::ExitCode::from(2);
    };
    let deadline = started + Duration::from_millis(limit);
    let (status, maxrss) = loop {
        let late = Instant::now() >= deadline;
        let mut raw = 0;
        #[expect(
            unsafe_code,
            reason = "wait4(2) is the only way to read a child's rusage"
        )]
        // SAFETY: kill and wait4 on the pid we spawned, writing into locals.
        let (reaped, ru) = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            if late {
                libc::kill(pid, libc::SIGKILL);
            }
            let flags = if late { 0 } else { libc::WNOHANG };
            (libc::wait4(pid, &mut raw, flags, &mut ru), ru)
        };
        if reaped == pid {
            let killed = late && libc::WIFSIGNALED(raw) && libc::WTERMSIG(raw) == libc::SIGKILL;
            let status = if killed {
                "killed".to_owned()
            } else {
                raw.to_string()
            };
            break (status, ru.ru_maxrss);
        }
        if reaped < 0 {
            eprintln!(
                "ferry-measure: wait4 failed: {}",
                std::io::Error::last_os_error()
            );
            return std::process::ExitCode::from(2);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let line = format!(
        "status={status} maxrss_kib={maxrss} wall_ms={}\n",
        started.elapsed().as_millis()
    );
    match std::fs::File::create(report).and_then(|mut f| f.write_all(line.as_bytes())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-measure: cannot write {report}: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

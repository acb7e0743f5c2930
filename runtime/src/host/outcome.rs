//! What a plugin call's result means for its event: the plugin's own
//! error, what its host calls ran into (a deadline, the memory cap, a
//! denial, a busy database) and how wasmtime stopped it (a trap, an exit,
//! the epoch deadline, the memory limiter), as one [`Failure`].

use wasmtime::Trap;

use crate::bindings::HandleError;
use crate::failure::{Failure, FailureKind, clip_owned};
use crate::host::CallReport;

/// The failure for an error wasmtime raised during a call: the guest's
/// `exit`, the memory cap (`memory`: asked, cap), the deadline, a limit a
/// host call hit, or a trap (with the plugin's last stderr lines).
pub(crate) fn trap_failure(
    e: &wasmtime::Error,
    report: CallReport,
    memory: Option<(usize, usize)>,
    stderr: Option<String>,
    timeout: std::time::Duration,
) -> Failure {
    if let Some((asked, cap)) = memory {
        return Failure::new(
            FailureKind::Memory,
            format!(
                "memory cap exceeded: the plugin asked for {asked} bytes of linear memory, its cap is {cap} bytes"
            ),
        );
    }
    if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) || report.timeout.is_some() {
        return deadline_exceeded(timeout);
    }
    if let Some(m) = report.memory {
        return Failure::new(FailureKind::Memory, m);
    }
    let what = if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        format!("the plugin exited with status {}", exit.0)
    } else {
        match e.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{e}"),
        }
    };
    let message = match stderr {
        Some(line) => format!("{what} (plugin stderr: {line})"),
        None => what,
    };
    Failure::new(FailureKind::Trap, clip_owned(message))
}

/// [`trap_failure`] with what `state` knows about the call (the memory
/// limiter, the plugin's last stderr lines).
pub(crate) fn stopped(
    state: &crate::host::HostState,
    e: &wasmtime::Error,
    report: CallReport,
    timeout: std::time::Duration,
) -> Failure {
    trap_failure(
        e,
        report,
        state
            .limiter
            .exceeded()
            .map(|a| (a, state.limiter.max_bytes())),
        state.stderr.take_recent(),
        timeout,
    )
}

/// The failure of a call that ran past its deadline.
pub(crate) fn deadline_exceeded(timeout: std::time::Duration) -> Failure {
    Failure::new(
        FailureKind::Timeout,
        format!(
            "deadline exceeded: the call ran longer than {} ms",
            timeout.as_millis()
        ),
    )
}

/// Turns the plugin's own error plus what the store saw into a failure:
/// a deadline or memory cap hit inside a host call outranks the plugin's
/// own words, then a denial, then a busy database.
pub(crate) fn classify(
    err: HandleError,
    report: CallReport,
    timeout: std::time::Duration,
) -> Failure {
    let err = match err {
        HandleError::Permanent(m) => HandleError::Permanent(clip_owned(m)),
        HandleError::Retryable(m) => HandleError::Retryable(clip_owned(m)),
    };
    if report.timeout.is_some() {
        return deadline_exceeded(timeout);
    }
    if let Some(m) = report.memory {
        return Failure::new(FailureKind::Memory, m);
    }
    match (err, report) {
        (
            HandleError::Permanent(m),
            CallReport {
                denied: Some(d), ..
            },
        ) => {
            let message = if m.contains(&d) {
                m
            } else {
                format!("{m} ({d})")
            };
            let message = clip_owned(message);
            Failure::new(FailureKind::Denied, message)
        }
        (
            HandleError::Permanent(m) | HandleError::Retryable(m),
            CallReport {
                transient: Some(t), ..
            },
        ) => Failure::new(FailureKind::HostTransient, format!("{m} ({t})")),
        (HandleError::Retryable(m), _) => Failure::new(FailureKind::Retryable, m),
        (HandleError::Permanent(m), _) => Failure::new(FailureKind::Permanent, m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_outranks_the_plugins_own_words() {
        let second = std::time::Duration::from_secs(1);
        let f = classify(
            HandleError::Permanent("insert failed".into()),
            CallReport {
                denied: Some("table `x` is not granted".into()),
                ..CallReport::default()
            },
            second,
        );
        assert_eq!(f.kind, FailureKind::Denied);
        assert!(f.message.contains("`x`"));
        let f = classify(
            HandleError::Permanent("db".into()),
            CallReport {
                transient: Some("database is locked".into()),
                ..CallReport::default()
            },
            second,
        );
        assert_eq!(f.kind, FailureKind::HostTransient);
        let f = classify(
            HandleError::Retryable("later".into()),
            CallReport::default(),
            second,
        );
        assert_eq!(f.kind, FailureKind::Retryable);
        let f = classify(
            HandleError::Permanent("the query failed".into()),
            CallReport {
                timeout: Some("interrupted".into()),
                denied: Some("also denied".into()),
                ..CallReport::default()
            },
            second,
        );
        assert_eq!(
            f.kind,
            FailureKind::Timeout,
            "the deadline outranks the rest"
        );
        assert!(f.message.contains("1000 ms"), "{}", f.message);
    }
}

//! systemd's notify protocol (`Type=notify`): READY=1 once the start-up scans are done,
//! STATUS= lines, WATCHDOG=1 pings, RELOADING=1 and STOPPING=1. A datagram to the socket
//! named by `$NOTIFY_SOCKET`; without it (not under systemd) every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (newline-separated `KEY=value` lines) to systemd, if it is listening.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else { return };
    if let Err(e) = send(&socket, state) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}

fn send(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    match bytes.strip_prefix(b"@") {
        // An abstract socket: the name after '@' (Linux only).
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sender.send_to_addr(state.as_bytes(), &address)?;
        }
        None => {
            sender.send_to(state.as_bytes(), std::path::Path::new(socket))?;
        }
    }
    Ok(())
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, when it is set for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok())
        && pid != std::process::id()
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

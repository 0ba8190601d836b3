//! Real HTTP servers for the `http` source tests: `python3 -m http.server` as the team runs it,
//! and `scripts/slow_http_server.py`, which sends bodies slowly. Killed (SIGKILL) when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// A Python server on `127.0.0.1:port`.
pub struct PyServer {
    child: Child,
    /// Held so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl PyServer {
    /// `python3 -m http.server PORT --bind 127.0.0.1 --directory DIR`; its request log (one line
    /// per request, with the status) is appended to `log`.
    pub fn plain(dir: &Path, port: u16, log: &Path) -> PyServer {
        let mut command = Command::new("python3");
        command.args(["-u", "-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"]).arg(dir);
        PyServer::start(command, port, log)
    }

    /// `scripts/slow_http_server.py`: bodies in `chunk`-byte pieces with `delay_s` seconds
    /// after each.
    pub fn slow(dir: &Path, port: u16, chunk: usize, delay_s: f64, log: &Path) -> PyServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slow_http_server.py");
        let mut command = Command::new("python3");
        command.arg(script).arg(port.to_string()).arg(dir).args(["--chunk", &chunk.to_string(), "--delay", &delay_s.to_string()]);
        PyServer::start(command, port, log)
    }

    /// Starts the server and waits for its "Serving HTTP on" line, printed once it listens.
    /// Waiting for the port to answer instead could be fooled by another server on it.
    fn start(mut command: Command, port: u16, log: &Path) -> PyServer {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("server log");
        let mut child = super::dies_with_test(&mut command).stdout(Stdio::piped()).stderr(log).spawn().expect("start python3");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line).expect("server output");
        if read == 0 || !line.starts_with("Serving HTTP on") {
            let exit = child.kill().and_then(|_| child.wait());
            panic!("the HTTP server on port {port} did not start ({exit:?}); it printed {line:?}, see its log");
        }
        PyServer { child, _stdout: stdout }
    }

    /// Stops it at once (SIGKILL), in the middle of whatever it is sending.
    pub fn kill(self) {}
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

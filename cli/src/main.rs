//! The `lockd` binary.
//!
//! The server, its client commands and its operator tools (`auth`, `verify`,
//! `config gen`) arrive with Foundation 3/5 and 5/5. Until then this binary
//! says so and exits with a non-zero status, rather than pretending to serve.

fn main() -> std::process::ExitCode {
    eprintln!(
        "lockd {}: the server is not built yet (Foundation 3/5); \
         run `cargo run --release -p lockd-bench -- logstore` to exercise the storage engine",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(2)
}

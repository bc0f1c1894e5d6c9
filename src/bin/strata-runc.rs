//! `strata-runc`: an OCI runtime with runc's command line (see `strata::runc`).
fn main() {
    std::process::exit(strata::runc::main());
}

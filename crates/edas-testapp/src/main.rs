//! `edas-testapp`: see the library docs for the endpoints and the environment it reads.

fn main() {
    if let Err(e) = edas_testapp::run() {
        eprintln!("edas-testapp: {e}");
        std::process::exit(2);
    }
}

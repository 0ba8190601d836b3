fn main() {
    std::process::exit(ingestd::cli::main());
}

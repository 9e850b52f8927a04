fn main() -> std::process::ExitCode {
    renrakucho_server::cli::main()
}

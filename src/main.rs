fn main() {
    std::process::exit(activeft::main());
}

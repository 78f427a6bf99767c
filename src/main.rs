fn main() {
    std::process::exit(activeft::run());
}

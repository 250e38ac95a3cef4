fn main() {
    ansible_module::run("resolver", resolver::spec(), resolver::run)
}

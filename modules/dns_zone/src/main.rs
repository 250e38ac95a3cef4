fn main() {
    ansible_module::run("dns_zone", dns_zone::spec(), dns_zone::run)
}

fn main() {
    ansible_module::run("apache_site", apache_site::spec(), apache_site::run)
}

fn main() {
    ansible_module::run(
        "haproxy_backend",
        haproxy_backend::spec(),
        haproxy_backend::run,
    )
}

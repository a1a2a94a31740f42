fn main() {
    for a in std::env::args().skip(1) {
        let r = hyperwatch_policies::test_file(std::path::Path::new(&a));
        println!("{r}");
    }
}

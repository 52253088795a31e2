// Reads lines "hex(pattern) hex(text)" and prints "E" (pattern rejected),
// "1" or "0" (is_match) per line.
use std::io::{self, BufRead, Write};
fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}
fn main() {
    let stdin = io::stdin();
    let mut out = io::BufWriter::new(io::stdout());
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let mut it = line.split(' ');
        let p = String::from_utf8(unhex(it.next().unwrap_or(""))).unwrap();
        let t = String::from_utf8(unhex(it.next().unwrap_or(""))).unwrap();
        let r = match regex::RegexBuilder::new(&p).size_limit(10 << 20).build() {
            Err(_) => "E".to_string(),
            Ok(re) => if re.is_match(&t) { "1".into() } else { "0".into() },
        };
        writeln!(out, "{}", r).unwrap();
    }
}

//! Gives librnn.so its SONAME, `librnn.so.<major>` (cargo sets none), so
//! programs linked against it load a compatible version.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librnn.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

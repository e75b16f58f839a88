//! `cargo xtask rxe-guest`: the Linux soft-RoCE (rxe) guest that `tests/src/rxe.rs`
//! (`RxeGuest`) boots in QEMU, built from Debian packages and cached.
//!
//! Debian's own kernel from bookworm-backports (the one `linux-image-amd64/bookworm-backports`
//! depends on: 6.12, whose config has `CONFIG_UDMABUF=y`, `CONFIG_DMABUF_HEAPS_SYSTEM=y` and
//! `CONFIG_RDMA_RXE=m`; bookworm's 6.1 has no udmabuf) and an initramfs holding
//! busybox, the rdma-core and perftest tools, `ip` and `rdma` from iproute2, every shared library
//! they need (the ELF `NEEDED` entries walked against the extracted packages, the rxe verbs
//! provider included), the kernel modules rxe and the NICs need (their `depends=` walked in the
//! modules' own `.modinfo`; modules the kernel has built in, per its `modules.builtin`, are
//! left out; `.ko.xz` modules are unpacked with the host's `xz`), and `/init`
//! (`rxe_guest_init.sh`). The userspace (rdma-core, perftest, busybox) stays bookworm's.
//!
//! The packages are resolved with `apt-cache depends` (the tools' `Depends`/`Pre-Depends`,
//! followed through library packages) and fetched with `apt-get download` (no root needed);
//! nothing is installed on the host. The guest lives in
//! `<target>/rxe-guest/<key>/` (`vmlinuz`, `initrd.img`, `manifest.json`), where the key hashes
//! the exact `.deb` file names (package and version), `/init` and the module list: the same
//! versions find the guest built and cost one `apt-get --print-uris` run.

use crate::{output, run};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The package whose dependency names the kernel, and the suite it is taken from.
const KERNEL_META: &str = "linux-image-amd64";
const KERNEL_SUITE: &str = "bookworm-backports";
/// What the guest runs: busybox, the verbs library and providers, their tools, perftest,
/// the RDMA CM and its tools, iproute2 (`ip`, `rdma`).
const PACKAGES: &[&str] = &[
    "busybox-static",
    "libibverbs1",
    "ibverbs-providers",
    "ibverbs-utils",
    "perftest",
    "rdmacm-utils",
    "librdmacm1",
    "iproute2",
];
/// Every executable of these packages' `usr/bin` goes into the guest.
const TOOL_PACKAGES: &[&str] = &["ibverbs-utils", "perftest", "rdmacm-utils"];
/// And these single tools (path inside the extracted packages).
const TOOLS: &[&str] = &["usr/bin/rdma", "bin/ip"];
/// The modules `/init` loads (their dependencies first, found in `.modinfo`): the NICs
/// (virtio-net on PCI), fw_cfg (the test script), the CRC32 the rxe ICRC asks the crypto API
/// for, rxe and the user verbs, the RDMA CM's user interface. Those the kernel has built in
/// (6.12: `virtio_pci`) are skipped; `udmabuf` is built in (`CONFIG_UDMABUF=y`).
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "qemu_fw_cfg",
    "crc32_generic",
    "rdma_rxe",
    "ib_uverbs",
    "rdma_ucm",
];
/// The verbs provider for rxe (dlopen'ed by libibverbs, so no `NEEDED` names it) and the file
/// that tells libibverbs about it.
const PROVIDER_DIR: &str = "usr/lib/x86_64-linux-gnu/libibverbs";
const PROVIDER_PREFIX: &str = "librxe-";
const PROVIDER_DRIVER: &str = "etc/libibverbs.d/rxe.driver";
/// Where the dynamic loader and the libraries look (Debian multiarch), in the tree and the guest.
const LIB_DIRS: &[&str] = &[
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib64",
    "usr/lib/x86_64-linux-gnu/libibverbs",
];
/// Libraries loaded with `dlopen` that no `NEEDED` entry names: glibc's `pthread_exit` and
/// `pthread_cancel` unwind through libgcc_s (rping's threads exit that way: without it they
/// abort with "libgcc_s.so.1 must be installed for pthread_exit to work").
const DLOPENED: &[&str] = &["libgcc_s.so.1"];
const INIT: &str = include_str!("rxe_guest_init.sh");

/// A built guest.
#[derive(Debug)]
pub struct Guest {
    pub dir: PathBuf,
    /// Whether this call built it (false: found in the cache).
    pub built: bool,
}

/// Where the guests are cached: `$CARGO_TARGET_DIR/rxe-guest`, or `<root>/target/rxe-guest`.
pub fn cache_root() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("target"))
        .join("rxe-guest")
}

/// `cargo xtask rxe-guest`: QEMU (x86) installed if missing, the guest built unless cached;
/// prints where it is and what it took.
pub fn cmd() -> Result<Guest> {
    crate::ensure_qemu("qemu-system-x86_64")?;
    let t = Instant::now();
    let g = ensure()?;
    println!(
        "rxe guest: {} ({} in {:.1?})",
        g.dir.display(),
        if g.built { "built" } else { "cached" },
        t.elapsed()
    );
    Ok(g)
}

/// `cargo xtask test`'s step (and `cargo xtask rxe-guest --test`): QEMU, the guest (built once,
/// then cached), the verbs backend (its build dependencies, its host tests, its guest binary
/// [`verbs_binary`]), and the guest's tests (`tests/tests/rxe_guest.rs`, ignored in the workspace
/// run because each boots a VM) against it, one at a time (TCG wants both cores).
pub fn test_step() -> Result<()> {
    let dir = cmd()?.dir;
    let verbs = verbs_binary()?;
    // The verbs backend's own tests on this host (no RDMA device here: discovery's error).
    crate::run_tests(crate::cargo().args([
        "test",
        "-p",
        "splitrx-host",
        "--features",
        "verbs",
        "--lib",
        "verbs::",
    ]))?;
    crate::run_tests(
        crate::cargo()
            .env("SPLITRX_RXE_GUEST", &dir)
            .env("SPLITRX_VERBS_BIN", &verbs)
            .args(["test", "-p", "splitrx-harness", "--test", "rxe_guest"])
            .args(["--", "--ignored", "--test-threads=1", "--nocapture"]),
    )
}

/// What building the verbs backend needs (`ibverbs-sys` runs rdma-core's cmake configure
/// and bindgen, and links the system's libibverbs).
pub const VERBS_BUILD_DEPS: &[&str] = &[
    "libibverbs-dev",
    "cmake",
    "libclang-dev",
    "libnl-3-dev",
    "libnl-route-3-dev",
    "pkg-config",
    "python3",
];

/// The verbs backend's guest binary (`tests/src/bin/splitrx-verbs.rs`, feature `verbs`): its
/// build dependencies installed if missing, built (incrementally) and stripped into the
/// guest cache (`<cache>/splitrx-verbs`, about 1 MB: it goes into the guest through fw_cfg).
pub fn verbs_binary() -> Result<PathBuf> {
    crate::ensure_apt(VERBS_BUILD_DEPS)?;
    crate::run(crate::cargo().args([
        "build",
        "-p",
        "splitrx-harness",
        "--features",
        "verbs",
        "--bin",
        "splitrx-verbs",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("target"));
    let built = target.join("debug/splitrx-verbs");
    let out = cache_root().join("splitrx-verbs");
    std::fs::create_dir_all(cache_root())?;
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(&built)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        // No binutils: the unstripped binary works too (slower through fw_cfg).
        std::fs::copy(&built, &out)
            .with_context(|| format!("copying {} to {}", built.display(), out.display()))?;
    }
    Ok(out)
}

/// The guest for the packages apt offers now: the cached one, or a new build.
pub fn ensure() -> Result<Guest> {
    for tool in ["apt-get", "apt-cache", "dpkg-deb", "gzip", "xz"] {
        if which(tool).is_none() {
            bail!(
                "the rxe guest is built with {tool}, which is not on PATH (a Debian host has it)"
            );
        }
    }
    let root = cache_root();
    let stamp = apt_stamp();
    if let Ok(cur) = std::fs::read_to_string(root.join("current")) {
        let mut lines = cur.lines();
        if let (Some(key), Some(s)) = (lines.next(), lines.next()) {
            let dir = root.join(key);
            if s == stamp && ready(&dir) {
                return Ok(Guest { dir, built: false });
            }
        }
    }
    let kernel = kernel_package()?;
    let mut roots: Vec<String> = PACKAGES.iter().map(|p| p.to_string()).collect();
    roots.push(kernel.clone());
    let all = closure(&roots)?;
    let debs = deb_names(&all)?;
    let key = cache_key(&debs);
    let dir = root.join(&key);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let cached = ready(&dir);
    if !cached {
        build(&dir, &kernel, &all, &debs)?;
    }
    // `apt-get update` (in `kernel_package`) may have changed the lists: stamp them now.
    std::fs::write(root.join("current"), format!("{key}\n{}\n", apt_stamp()))?;
    Ok(Guest {
        dir,
        built: !cached,
    })
}

/// Whether `dir` holds a whole guest (it is renamed into place only once complete).
fn ready(dir: &Path) -> bool {
    ["vmlinuz", "initrd.img", "manifest.json"]
        .iter()
        .all(|f| dir.join(f).is_file())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|f| f.is_file())
    })
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0")
}

/// `apt-cache depends [--recurse] PKGS` (Depends and Pre-Depends only).
fn apt_depends(pkgs: &[String], recurse: bool) -> Result<String> {
    let out = Command::new("apt-cache")
        .arg("depends")
        .args(recurse.then_some("--recurse"))
        .args(["--no-recommends", "--no-suggests", "--no-conflicts"])
        .args(["--no-breaks", "--no-replaces", "--no-enhances"])
        .args(pkgs)
        .stderr(Stdio::piped())
        .output()
        .context("could not run apt-cache")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || text.trim().is_empty() {
        bail!(
            "apt-cache knows none of {}: {}",
            pkgs.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(text)
}

/// `linux-image-X-amd64`, the kernel `linux-image-amd64` of [`KERNEL_SUITE`] depends on.
/// Enables bookworm-backports (as root) if apt's sources lack it, and runs `apt-get update`
/// once (as root) when apt's lists do not know the kernel.
fn kernel_package() -> Result<String> {
    if is_root() {
        crate::ensure_backports()?;
    }
    let find = || -> Result<String> {
        let text = apt_depends(&[format!("{KERNEL_META}/{KERNEL_SUITE}")], false)?;
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-") && !p.starts_with('<'))
            .map(str::to_string)
            .with_context(|| format!("{KERNEL_META} depends on no linux-image package:\n{text}"))
    };
    match find() {
        Ok(k) => Ok(k),
        Err(e) if is_root() => {
            println!("apt's lists do not know the kernel ({e:#}): apt-get update");
            run(Command::new("apt-get").args(["update", "-qq"]))
                .context("apt-get update failed: is the Debian mirror reachable?")?;
            find()
        }
        Err(e) => bail!(
            "{e:#}: apt's package lists do not know {KERNEL_META} in {KERNEL_SUITE}; add \
             {KERNEL_SUITE} to apt's sources and run `sudo apt-get update` \
             (the guest is downloaded with `apt-get download`, which needs no root after that)"
        ),
    }
}

/// `roots` and every package they depend on through library packages (Debian section
/// `libs`): what their executables can need at run time. Virtual packages are left out. Two
/// apt calls (each reads apt's whole cache): the dependency graph, then the sections.
fn closure(roots: &[String]) -> Result<BTreeSet<String>> {
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut at = String::new();
    for l in apt_depends(roots, true)?.lines() {
        if !l.starts_with(' ') {
            at = l.trim().to_string();
            graph.entry(at.clone()).or_default();
        } else if let Some(dep) = l
            .trim()
            .trim_start_matches('|')
            .strip_prefix("Depends: ")
            .or_else(|| {
                l.trim()
                    .trim_start_matches('|')
                    .strip_prefix("PreDepends: ")
            })
        {
            if !dep.starts_with('<') {
                graph.entry(at.clone()).or_default().push(dep.to_string());
            }
        }
    }
    let names: Vec<&String> = graph.keys().filter(|k| !k.starts_with('<')).collect();
    let show = output(
        Command::new("apt-cache")
            .args(["show", "--no-all-versions"])
            .args(names),
    )?;
    let mut libs = BTreeSet::new();
    let mut pkg = "";
    for l in show.lines() {
        if let Some(p) = l.strip_prefix("Package: ") {
            pkg = p.trim();
        } else if let Some(sec) = l.strip_prefix("Section: ") {
            if sec.trim().ends_with("libs") {
                libs.insert(pkg.to_string());
            }
        }
    }
    let mut seen: BTreeSet<String> = roots.iter().cloned().collect();
    let mut todo: Vec<String> = roots.to_vec();
    while let Some(p) = todo.pop() {
        for d in graph.get(&p).into_iter().flatten() {
            if libs.contains(d) && seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    Ok(seen)
}

/// The `.deb` file names `apt-get download` would fetch (package_version_arch.deb).
fn deb_names(pkgs: &BTreeSet<String>) -> Result<BTreeMap<String, String>> {
    let out = Command::new("apt-get")
        .args(["download", "--print-uris"])
        .args(pkgs)
        .stderr(Stdio::piped())
        .output()
        .context("could not run apt-get")?;
    if !out.status.success() {
        bail!(
            "apt-get download --print-uris {}: {}",
            pkgs.iter().cloned().collect::<Vec<_>>().join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut names = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        // 'URI' file_name size hash
        if let Some(file) = l.split_whitespace().nth(1) {
            let pkg = file.split('_').next().unwrap_or(file).to_string();
            names.insert(pkg, file.to_string());
        }
    }
    for p in pkgs {
        if !names.contains_key(p) {
            bail!("apt-get offers no .deb for {p}");
        }
    }
    Ok(names)
}

/// FNV-1a 64 over `parts` (each ended by a NUL), in hex.
fn fnv<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &x in part.iter().chain(&[0u8]) {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// What the guest is built from besides the packages: `/init` and the lists above.
fn recipe() -> Vec<&'static [u8]> {
    let mut parts = vec![INIT.as_bytes(), KERNEL_SUITE.as_bytes()];
    for list in [PACKAGES, TOOL_PACKAGES, TOOLS, MODULES, DLOPENED] {
        parts.extend(list.iter().map(|s| s.as_bytes()));
    }
    parts
}

/// The cache key: the exact .deb names (package and version) and the recipe.
fn cache_key(debs: &BTreeMap<String, String>) -> String {
    fnv(debs.values().map(|d| d.as_bytes()).chain(recipe()))
}

/// The state of apt's view (when its lists, sources or preferences last changed) and the
/// recipe: while it is the one recorded with the current guest, the packages apt would pick
/// are the ones that guest was built from, and no apt call is needed to know it.
fn apt_stamp() -> String {
    let mut newest = std::time::UNIX_EPOCH;
    for d in [
        "/var/lib/apt/lists",
        "/etc/apt/sources.list.d",
        "/etc/apt/preferences.d",
    ] {
        let entries = std::fs::read_dir(d).into_iter().flatten().flatten();
        for e in entries.map(|e| e.path()).chain([PathBuf::from(d)]) {
            if let Ok(t) = std::fs::metadata(&e).and_then(|m| m.modified()) {
                newest = newest.max(t);
            }
        }
    }
    let ns = newest
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{ns}-{}", fnv(recipe()))
}

/// Downloads and extracts the packages into `<dir>.tmp`, packs the initramfs, and renames the
/// result to `dir`; older guests next to it are removed.
fn build(
    dir: &Path,
    kernel: &str,
    pkgs: &BTreeSet<String>,
    debs: &BTreeMap<String, String>,
) -> Result<()> {
    let t0 = Instant::now();
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let tree = tmp.join("tree");
    println!(
        "rxe guest: downloading {} packages ({kernel} and the tools' libraries)",
        pkgs.len()
    );
    download(&tmp.join("debs"), pkgs)?;
    let t_dl = t0.elapsed();
    extract(&tmp, debs)?;
    let t_x = t0.elapsed();
    let kver = kernel
        .strip_prefix("linux-image-")
        .context("kernel package name")?;

    let mut img = Initramfs::default();
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "lib64",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "root",
        "etc/rxe-guest",
    ] {
        img.dir(d);
    }
    img.file("init", INIT.as_bytes().to_vec(), 0o755);
    let exes = executables(&tmp)?;
    add_busybox(&mut img, &tree, &exes)?;
    let libs = add_libraries(&mut img, &tree, &exes, debs)?;
    for (n, p) in &exes {
        img.file(&format!("usr/bin/{n}"), read(p)?, 0o755);
    }
    let modules = add_modules(&mut img, &tree.join("lib/modules").join(kver))?;
    let cpio = img.newc();
    gzip(&cpio, &tmp.join("initrd.img"))?;
    std::fs::copy(
        tree.join(format!("boot/vmlinuz-{kver}")),
        tmp.join("vmlinuz"),
    )
    .context("the kernel package has no boot/vmlinuz")?;

    let build_secs = t0.elapsed().as_secs_f64();
    let initrd_bytes = std::fs::metadata(tmp.join("initrd.img"))?.len();
    let manifest = serde_json::json!({
        "kernel_version": kver,
        "packages": debs.values().collect::<Vec<_>>(),
        "modules": modules,
        "tools": exes.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "libraries": libs,
        "cpio_bytes": cpio.len(),
        "initrd_bytes": initrd_bytes,
        "download_secs": t_dl.as_secs_f64(),
        "extract_secs": (t_x - t_dl).as_secs_f64(),
        "build_secs": build_secs,
    });
    std::fs::write(
        tmp.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    for d in ["debs", "tree", "pkg"] {
        std::fs::remove_dir_all(tmp.join(d))?;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir)?;
    // Only the newest guest is kept.
    if let Some(parent) = dir.parent() {
        for e in std::fs::read_dir(parent)?.filter_map(|e| e.ok()) {
            if e.path() != dir && e.path().is_dir() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    println!(
        "rxe guest: built in {build_secs:.1} s (download {:.1} s, extract {:.1} s): kernel \
         {kver}, {} modules, {} tools, {} libraries, initrd {} KiB ({} KiB unpacked)",
        t_dl.as_secs_f64(),
        (t_x - t_dl).as_secs_f64(),
        modules.len(),
        exes.len(),
        libs.len(),
        initrd_bytes >> 10,
        cpio.len() >> 10
    );
    Ok(())
}

/// `apt-get download` of `pkgs` into `dl` (no root needed).
fn download(dl: &Path, pkgs: &BTreeSet<String>) -> Result<()> {
    std::fs::create_dir_all(dl)?;
    let out = Command::new("apt-get")
        .current_dir(dl)
        .args(["download", "-q"])
        .args(pkgs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("could not run apt-get download")?;
    if !out.status.success() {
        bail!(
            "apt-get download failed (is the Debian mirror reachable?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Every package into `tmp/tree` (libraries, modules, kernel, busybox), and each tool package
/// into `tmp/pkg/<name>` as well (its executables are taken by package).
fn extract(tmp: &Path, debs: &BTreeMap<String, String>) -> Result<()> {
    for (pkg, deb) in debs {
        let mut into = vec![tmp.join("tree")];
        if TOOL_PACKAGES.contains(&pkg.as_str()) {
            into.push(tmp.join("pkg").join(pkg));
        }
        for d in into {
            std::fs::create_dir_all(&d)?;
            run(Command::new("dpkg-deb")
                .arg("-x")
                .arg(tmp.join("debs").join(deb))
                .arg(&d))?;
        }
    }
    std::fs::create_dir_all(tmp.join("pkg"))?;
    Ok(())
}

/// The executables the guest gets in `/usr/bin`: every ELF file in the tool packages'
/// `usr/bin`, and [`TOOLS`]; (name, path in the extracted tree).
fn executables(tmp: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut exes = Vec::new();
    for pkg in TOOL_PACKAGES {
        let bin = tmp.join("pkg").join(pkg).join("usr/bin");
        let mut found: Vec<_> = std::fs::read_dir(&bin)
            .with_context(|| format!("{pkg} has no usr/bin"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| std::fs::read(p).is_ok_and(|b| b.starts_with(b"\x7fELF")))
            .collect();
        found.sort();
        exes.extend(found.into_iter().map(|p| (name_of(&p), p)));
    }
    for t in TOOLS {
        let p = tmp.join("tree").join(t);
        if !p.is_file() {
            bail!("{t} is in none of the packages");
        }
        exes.push((name_of(&p), p));
    }
    Ok(exes)
}

/// `/bin/busybox` and a link for each applet no tool of `exes` is named after.
fn add_busybox(img: &mut Initramfs, tree: &Path, exes: &[(String, PathBuf)]) -> Result<()> {
    let busybox = tree.join("bin/busybox");
    img.file("bin/busybox", read(&busybox)?, 0o755);
    let applets = output(Command::new(&busybox).arg("--list"))
        .context("could not list busybox's applets (running the static busybox on this host)")?;
    for a in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if a != "busybox" && !exes.iter().any(|(n, _)| n == a) {
            img.symlink(&format!("bin/{a}"), "busybox");
        }
    }
    Ok(())
}

/// The rxe verbs provider with its `.driver` file, the dynamic loader, and every library the
/// executables and the provider need (their `NEEDED` entries, transitively, and
/// [`DLOPENED`]), by soname in `/lib/x86_64-linux-gnu`. Returns the sonames.
fn add_libraries(
    img: &mut Initramfs,
    tree: &Path,
    exes: &[(String, PathBuf)],
    debs: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let pdir = tree.join(PROVIDER_DIR);
    let provider = std::fs::read_dir(&pdir)
        .with_context(|| {
            format!(
                "{} missing: is ibverbs-providers extracted?",
                pdir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| name_of(p).starts_with(PROVIDER_PREFIX))
        .context("ibverbs-providers has no rxe provider (librxe-*.so)")?;
    img.file(
        &format!("{PROVIDER_DIR}/{}", name_of(&provider)),
        read(&provider)?,
        0o755,
    );
    img.file(PROVIDER_DRIVER, read(&tree.join(PROVIDER_DRIVER))?, 0o644);
    let mut elves: Vec<PathBuf> = exes.iter().map(|(_, p)| p.clone()).collect();
    elves.push(provider);
    let mut libs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut interp = None;
    let mut dlopened: Vec<String> = DLOPENED.iter().map(|s| s.to_string()).collect();
    while let Some(elf) = elves.pop() {
        let bytes = read(&elf)?;
        let info = elf_dynamic(&bytes)
            .with_context(|| format!("{}: not an x86-64 ELF file", elf.display()))?;
        if let Some(i) = info.interp {
            interp.get_or_insert(i);
        }
        for so in info.needed.into_iter().chain(dlopened.drain(..)) {
            if libs.contains_key(&so) {
                continue;
            }
            let Some(p) = LIB_DIRS
                .iter()
                .find_map(|d| in_tree(tree, &format!("{d}/{so}")))
            else {
                bail!(
                    "{so} (needed by {}) is in none of the downloaded packages ({}): add its \
                     package to PACKAGES in xtask/src/rxe_guest.rs",
                    elf.display(),
                    debs.values().cloned().collect::<Vec<_>>().join(" ")
                );
            };
            elves.push(p.clone());
            libs.insert(so, p);
        }
    }
    for (so, p) in &libs {
        img.file(&format!("lib/x86_64-linux-gnu/{so}"), read(p)?, 0o755);
    }
    let interp = interp.context("no executable names a dynamic loader")?;
    let interp = interp.trim_start_matches('/');
    let loader = in_tree(tree, interp)
        .with_context(|| format!("the dynamic loader /{interp} is in none of the packages"))?;
    img.file(interp, read(&loader)?, 0o755);
    Ok(libs.into_keys().collect())
}

/// [`MODULES`] and their dependencies from the kernel's module tree `kdir`
/// (`/lib/modules/<version>`), as `/lib/modules/<name>.ko` (unpacked), and their load order in
/// `/etc/rxe-guest/modules` (read by `/init`). Returns that order.
fn add_modules(img: &mut Initramfs, kdir: &Path) -> Result<Vec<String>> {
    let index = module_index(&kdir.join("kernel"))?;
    let builtin = builtin_modules(kdir)?;
    let mut order: Vec<String> = Vec::new();
    for m in MODULES {
        if !index.contains_key(*m) && builtin.contains(*m) {
            continue;
        }
        module_order(m, &index, &mut order, 0)?;
    }
    for m in &order {
        img.file(
            &format!("lib/modules/{m}.ko"),
            module_bytes(&index[m])?,
            0o644,
        );
    }
    img.file(
        "etc/rxe-guest/modules",
        (order.join("\n") + "\n").into_bytes(),
        0o644,
    );
    Ok(order)
}

/// `data` gzip'ed into `to` (the host's `gzip`; `-n`: no name or time stamp).
fn gzip(data: &[u8], to: &Path) -> Result<()> {
    let mut gz = Command::new("gzip")
        .args(["-6", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(to)?)
        .spawn()
        .context("could not start gzip")?;
    gz.stdin.take().context("gzip stdin")?.write_all(data)?;
    if !gz.wait()?.success() {
        bail!("gzip failed");
    }
    Ok(())
}

/// `rel` inside `tree` with its symbolic links followed inside the tree (an absolute link
/// names a path of the tree, not of this host); `None` if it is not there.
fn in_tree(tree: &Path, rel: &str) -> Option<PathBuf> {
    let mut p = tree.join(rel);
    for _ in 0..40 {
        let meta = std::fs::symlink_metadata(&p).ok()?;
        if !meta.file_type().is_symlink() {
            return meta.is_file().then_some(p);
        }
        let target = std::fs::read_link(&p).ok()?;
        p = match target.strip_prefix("/") {
            Ok(abs) => tree.join(abs),
            Err(_) => p.parent()?.join(target),
        };
    }
    None
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The modules the kernel has built in (`modules.builtin` in `kdir`), by name.
fn builtin_modules(kdir: &Path) -> Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(kdir.join("modules.builtin")).unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|l| {
            name_of(Path::new(l.trim()))
                .strip_suffix(".ko")
                .map(str::to_string)
        })
        .map(|n| n.replace('-', "_"))
        .collect())
}

/// A module file's ELF bytes (`.ko.xz` unpacked with the host's `xz`).
fn module_bytes(p: &Path) -> Result<Vec<u8>> {
    if p.extension().is_some_and(|e| e == "xz") {
        let out = Command::new("xz")
            .args(["-d", "-c"])
            .arg(p)
            .stderr(Stdio::piped())
            .output()
            .context("could not run xz (xz-utils) to unpack the kernel's modules")?;
        if !out.status.success() {
            bail!(
                "xz -d {}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        return Ok(out.stdout);
    }
    read(p)
}

/// Every module under `dir` by its name (`-` read as `_`, as the kernel does; `.ko` or
/// `.ko.xz`).
fn module_index(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut idx = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let name = name_of(&p);
                if let Some(n) = name
                    .strip_suffix(".ko")
                    .or_else(|| name.strip_suffix(".ko.xz"))
                {
                    idx.insert(n.replace('-', "_"), p);
                }
            }
        }
    }
    Ok(idx)
}

/// Appends `m` to `order` after its dependencies (`depends=` in the module's `.modinfo`).
fn module_order(
    m: &str,
    index: &BTreeMap<String, PathBuf>,
    order: &mut Vec<String>,
    depth: usize,
) -> Result<()> {
    if order.iter().any(|o| o == m) {
        return Ok(());
    }
    if depth > 32 {
        bail!("module dependency loop at {m}");
    }
    let path = index
        .get(m)
        .with_context(|| format!("kernel module {m} is not in the kernel package"))?;
    let bytes = module_bytes(path)?;
    let deps = bytes
        .windows(9)
        .position(|w| w == b"\0depends=")
        .map(|at| {
            let rest = &bytes[at + 9..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).into_owned()
        })
        .unwrap_or_default();
    for d in deps.split(',').filter(|d| !d.is_empty()) {
        module_order(&d.replace('-', "_"), index, order, depth + 1)?;
    }
    order.push(m.to_string());
    Ok(())
}

/// What an ELF64 little-endian file asks of the dynamic loader.
#[derive(Debug, Default, PartialEq)]
struct Dynamic {
    interp: Option<String>,
    needed: Vec<String>,
}

/// `PT_INTERP` and the `DT_NEEDED` names of an x86-64 ELF file (none for a static one);
/// `None` if it is not one.
fn elf_dynamic(b: &[u8]) -> Option<Dynamic> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    if !b.starts_with(b"\x7fELF\x02\x01") || u16_at(18)? != 62 {
        return None;
    }
    let (phoff, phent, phnum) = (u64_at(0x20)? as usize, u16_at(0x36)?, u16_at(0x38)?);
    let cstr = |o: usize| -> Option<String> {
        let s = b.get(o..)?;
        let end = s.iter().position(|&c| c == 0)?;
        Some(String::from_utf8_lossy(&s[..end]).into_owned())
    };
    let mut loads = Vec::new();
    let (mut dynamic, mut d) = (None, Dynamic::default());
    for i in 0..usize::from(phnum) {
        let ph = phoff + i * usize::from(phent);
        let (ty, off, vaddr, filesz) = (
            u32_at(ph)?,
            u64_at(ph + 8)?,
            u64_at(ph + 16)?,
            u64_at(ph + 32)?,
        );
        match ty {
            1 => loads.push((vaddr, off, filesz)),
            2 => dynamic = Some((off as usize, filesz as usize)),
            3 => d.interp = cstr(off as usize),
            _ => {}
        }
    }
    let Some((off, len)) = dynamic else {
        return Some(d);
    };
    let (mut strtab, mut needed) = (None, Vec::new());
    for e in (off..off + len).step_by(16) {
        match u64_at(e)? {
            0 => break,
            1 => needed.push(u64_at(e + 8)?),
            5 => strtab = Some(u64_at(e + 8)?),
            _ => {}
        }
    }
    let strtab = strtab?;
    let (v, o, _) = loads
        .iter()
        .copied()
        .find(|&(v, _, n)| (v..v + n).contains(&strtab))?;
    let base = (strtab - v + o) as usize;
    for n in needed {
        d.needed.push(cstr(base + n as usize)?);
    }
    Some(d)
}

/// An initramfs being built: entries in the order written.
#[derive(Default)]
struct Initramfs {
    entries: Vec<(String, u32, Vec<u8>)>,
}

impl Initramfs {
    /// A directory and its parents.
    fn dir(&mut self, path: &str) {
        let mut at = String::new();
        for part in path.split('/') {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            if !self.entries.iter().any(|(p, _, _)| *p == at) {
                self.entries.push((at.clone(), 0o040_755, Vec::new()));
            }
        }
    }
    fn file(&mut self, path: &str, data: Vec<u8>, perm: u32) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries
            .push((path.to_string(), 0o100_000 | perm, data));
    }
    fn symlink(&mut self, path: &str, target: &str) {
        self.entries
            .push((path.to_string(), 0o120_777, target.as_bytes().to_vec()));
    }
    /// The `newc` cpio archive the kernel unpacks (mtimes 0: the same input, the same bytes).
    fn newc(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let pad = |out: &mut Vec<u8>| out.resize(out.len().next_multiple_of(4), 0);
        let mut entry = |ino: usize, name: &str, mode: u32, data: &[u8]| {
            let fields = [
                ino as u32,
                mode,
                0,
                0,
                1,
                0,
                data.len() as u32,
                0,
                0,
                0,
                0,
                name.len() as u32 + 1,
                0,
            ];
            out.extend_from_slice(b"070701");
            for f in fields {
                out.extend_from_slice(format!("{f:08x}").as_bytes());
            }
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            pad(&mut out);
            out.extend_from_slice(data);
            pad(&mut out);
        };
        for (i, (p, mode, data)) in self.entries.iter().enumerate() {
            entry(i + 1, p, *mode, data);
        }
        entry(0, "TRAILER!!!", 0, &[]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_aligned_and_end_with_the_trailer() {
        let mut i = Initramfs::default();
        i.file("a/b", b"hello".to_vec(), 0o644);
        let c = i.newc();
        assert!(c.starts_with(b"070701"));
        assert_eq!(c.len() % 4, 0);
        // "a" (dir), "a/b" (file), trailer.
        assert_eq!(c.windows(6).filter(|w| w == b"070701").count(), 3);
        let at = c.windows(5).position(|w| w == b"hello").unwrap();
        assert_eq!(at % 4, 0);
        assert!(c.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    #[test]
    fn elf_dynamic_reads_this_executables_loader_and_libc() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let d = elf_dynamic(&me).expect("an x86-64 ELF file");
        assert_eq!(d.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        assert!(d.needed.iter().any(|n| n == "libc.so.6"), "{d:?}");
        assert_eq!(elf_dynamic(b"#!/bin/sh\n"), None);
    }
}

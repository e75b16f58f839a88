//! probe-rs: a board's target, the image planned against its memory map without a probe, and
//! flashing and running on a real board.

use crate::Log;
use anyhow::{bail, Context, Result};
use object::elf::{PT_LOAD, SHF_ALLOC};
use object::read::elf::{ElfFile32, FileHeader, ProgramHeader, SectionHeader};
use object::Endianness;
use probe_rs::config::{MemoryRegion, Registry, Target};
use probe_rs::flashing::FlashLoader;
use std::path::Path;
use std::time::{Duration, Instant};

/// A board's probe-rs target: `probe` from its board.toml is a built-in chip name or a target
/// description file (`*.yaml`, relative to the board folder). The description is validated by
/// probe-rs as it is added; the chip is the description's only variant.
pub fn target(board_dir: &Path, probe: &str) -> Result<(Registry, Target)> {
    let mut registry = Registry::from_builtin_families();
    let name = if probe.ends_with(".yaml") || probe.ends_with(".yml") {
        let path = board_dir.join(probe);
        let yaml = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let family = registry
            .add_target_family_from_yaml(&yaml)
            .with_context(|| format!("probe-rs refused {}", path.display()))?;
        let fam = registry
            .families()
            .iter()
            .find(|f| f.name == family)
            .context("family just added")?;
        match fam.variants.as_slice() {
            [one] => one.name.clone(),
            v => bail!(
                "{}: expected one chip variant, found {}",
                path.display(),
                v.len()
            ),
        }
    } else {
        probe.to_string()
    };
    let t = registry
        .get_target_by_name(&name)
        .with_context(|| format!("probe-rs has no target `{name}`"))?;
    if t.memory_map.is_empty() {
        bail!(
            "probe-rs target `{name}` has no memory map: the board must ship a target description"
        );
    }
    Ok((registry, t))
}

/// One staged piece of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub address: u64,
    pub len: u64,
    /// Name of the memory region of the target holding it.
    pub region: String,
}

/// What [`plan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Loadable segments (file data), as probe-rs's loader staged them.
    pub loaded: Vec<Staged>,
    /// Every allocated section (code, data, bss, stack, ...) and the region holding it.
    pub sections: Vec<(String, Staged)>,
    /// The vector table is in RAM: probe-rs boots the image from RAM after the download.
    pub boots_from_ram: bool,
}

fn region_name(r: &MemoryRegion) -> String {
    match r {
        MemoryRegion::Ram(r) => r.name.clone(),
        MemoryRegion::Nvm(r) => r.name.clone(),
        MemoryRegion::Generic(r) => r.name.clone(),
    }
    .unwrap_or_else(|| format!("{:#x?}", r.address_range()))
}

/// The region of `t`'s memory map holding all of `[address, address + len)`, if one does.
fn region_of(t: &Target, address: u64, len: u64) -> Option<&MemoryRegion> {
    let end = address.checked_add(len)?;
    t.memory_map.iter().find(|r| {
        let rr = r.address_range();
        rr.start <= address && end <= rr.end
    })
}

/// Stages every loadable segment of the ELF image in probe-rs's `FlashLoader` for `t`'s memory
/// map (what `download` does before it needs a probe: data outside every region is refused
/// there), and checks that every allocated section, `.bss` and the stack included, lies in
/// one region.
pub fn plan(t: &Target, elf: &[u8]) -> Result<Plan> {
    let file = ElfFile32::<Endianness>::parse(elf).context("not a 32-bit ELF image")?;
    let endian = file.endian();
    let header = file.elf_header();
    let mut loader = FlashLoader::new(t.memory_map.clone(), t.source().clone());
    let mut loaded = Vec::new();
    for ph in header.program_headers(endian, elf)? {
        if ph.p_type(endian) != PT_LOAD || ph.p_filesz(endian) == 0 {
            continue;
        }
        let address = u64::from(ph.p_paddr(endian));
        let data = ph
            .data(endian, elf)
            .map_err(|()| anyhow::anyhow!("segment at {address:#x} is outside the file"))?;
        loader.add_data(address, data).with_context(|| {
            format!("probe-rs cannot place {} bytes at {address:#x}", data.len())
        })?;
        let len = data.len() as u64;
        loaded.push(Staged {
            address,
            len,
            region: region_of(t, address, len).map_or("?".into(), region_name),
        });
    }
    if loaded.is_empty() {
        bail!("the image has no loadable data");
    }
    let staged: u64 = loader.data().map(|(_, d)| d.len() as u64).sum();
    let want: u64 = loaded.iter().map(|s| s.len).sum();
    if staged != want {
        bail!("probe-rs staged {staged} bytes of the image's {want}");
    }
    let mut sections = Vec::new();
    let table = header.sections(endian, elf)?;
    for s in table.iter() {
        if u64::from(s.sh_flags(endian)) & u64::from(SHF_ALLOC) == 0 || s.sh_size(endian) == 0 {
            continue;
        }
        let name = String::from_utf8_lossy(table.section_name(endian, s)?).into_owned();
        let (address, len) = (u64::from(s.sh_addr(endian)), u64::from(s.sh_size(endian)));
        let Some(r) = region_of(t, address, len) else {
            bail!(
                "section {name} ({len} bytes at {address:#x}) is not inside one region of the \
                 target's memory map"
            );
        };
        sections.push((
            name,
            Staged {
                address,
                len,
                region: region_name(r),
            },
        ));
    }
    let boots_from_ram = sections.iter().any(|(n, s)| {
        n == ".vector_table" && matches!(region_of(t, s.address, s.len), Some(MemoryRegion::Ram(_)))
    });
    Ok(Plan {
        loaded,
        sections,
        boots_from_ram,
    })
}

/// `MEMORY` regions of a linker script (`memory.x`): (name, origin, length), for checking
/// that the image's link map and the probe-rs description agree.
pub fn memory_x(text: &str) -> Result<Vec<(String, u64, u64)>> {
    let num = |s: &str| -> Result<u64> {
        let s = s.trim();
        let (digits, mul) = match s.as_bytes().last() {
            Some(b'K') => (&s[..s.len() - 1], 1 << 10),
            Some(b'M') => (&s[..s.len() - 1], 1 << 20),
            _ => (s, 1),
        };
        let v = match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(h) => u64::from_str_radix(h, 16),
            None => digits.parse(),
        }
        .with_context(|| format!("bad number `{s}` in memory.x"))?;
        Ok(v * mul)
    };
    // Drop /* */ comments, then read `NAME : ORIGIN = a, LENGTH = b` lines of the MEMORY block.
    let mut clean = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("/*") {
        clean += &rest[..i];
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    clean += rest;
    let block = clean
        .split_once("MEMORY")
        .and_then(|(_, b)| b.split_once('{'))
        .and_then(|(_, b)| b.split_once('}'))
        .map(|(b, _)| b)
        .context("memory.x has no MEMORY block")?;
    let mut out = Vec::new();
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, spec) = line
            .split_once(':')
            .context("memory.x: expected `NAME : ...`")?;
        let mut origin = None;
        let mut length = None;
        for part in spec.split(',') {
            let (k, v) = part
                .split_once('=')
                .context("memory.x: expected `KEY = value`")?;
            match k.trim() {
                "ORIGIN" | "org" | "o" => origin = Some(num(v)?),
                "LENGTH" | "len" | "l" => length = Some(num(v)?),
                other => bail!("memory.x: unknown key {other}"),
            }
        }
        let name = name.split_whitespace().next().unwrap_or("").to_string();
        out.push((
            name,
            origin.context("memory.x: ORIGIN missing")?,
            length.context("memory.x: LENGTH missing")?,
        ));
    }
    Ok(out)
}

/// How a run on the board ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The image called semihosting exit with this code.
    Code(u32),
    /// Still running after the timeout (left running).
    TimedOut,
}

/// No probe matched: the message `cargo xtask flash` prints (and exits non-zero with).
#[derive(Debug)]
pub struct NoProbe(pub Option<String>);

impl std::fmt::Display for NoProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => write!(
                f,
                "no debug probe found: connect one (CMSIS-DAP, ST-Link, J-Link, ...) to the \
                 board's debug port and check its USB permissions; nothing was flashed"
            ),
            Some(sel) => write!(
                f,
                "no debug probe matches `{sel}`: check the VID:PID[:serial]; nothing was flashed"
            ),
        }
    }
}
impl std::error::Error for NoProbe {}

/// Flashes `elf` onto the board through the first probe (or the one `selector` names), resets
/// it (from RAM when the vector table is in RAM), streams its defmt log over RTT through `out`
/// and waits for its semihosting exit, at most `timeout`.
pub fn flash_and_run(
    registry: &Registry,
    target: Target,
    elf_path: &Path,
    selector: Option<&str>,
    timeout: Duration,
    mut out: impl FnMut(&str),
) -> Result<Exit> {
    use probe_rs::probe::list::Lister;
    use probe_rs::{semihosting::SemihostingCommand, RegisterValue};
    use probe_rs::{BreakpointCause, CoreStatus, HaltReason, MemoryInterface, Permissions};

    let elf = std::fs::read(elf_path).with_context(|| format!("reading {}", elf_path.display()))?;
    let plan = plan(&target, &elf)?;
    let log = Log::from_elf(&elf)?;
    let lister = Lister::new();
    let probe = match selector {
        Some(sel) => {
            let want: probe_rs::probe::DebugProbeSelector = sel
                .parse()
                .with_context(|| format!("bad probe selector `{sel}` (VID:PID[:serial])"))?;
            let Some(info) = lister
                .list_all()
                .into_iter()
                .find(|p| want.matches_probe(p))
            else {
                return Err(NoProbe(Some(sel.into())).into());
            };
            info.open()?
        }
        None => match lister.list_all().first() {
            Some(info) => info.open()?,
            None => return Err(NoProbe(None).into()),
        },
    };
    let mut session = probe.attach_with_registry(target, Permissions::default(), registry)?;
    let mut loader = probe_rs::flashing::build_loader(
        &mut session,
        elf_path,
        probe_rs::flashing::ElfLoader(Default::default()),
        None,
    )?;
    loader.read_rtt_output(false);
    loader.commit(&mut session, probe_rs::flashing::DownloadOptions::default())?;
    let mut core = session.core(0)?;
    core.reset_and_halt(Duration::from_millis(500))?;
    if plan.boots_from_ram {
        // Boot from RAM as the reset would from flash: VTOR, SP and PC from the vector table.
        let vt = plan
            .sections
            .iter()
            .find(|(n, _)| n == ".vector_table")
            .map(|(_, s)| s.address)
            .context("no .vector_table")?;
        const VTOR: u64 = 0xE000_ED08;
        core.write_word_32(VTOR, vt as u32)?;
        let sp = core.read_word_32(vt)?;
        let pc = core.read_word_32(vt + 4)?;
        let (sp_id, pc_id) = (core.stack_pointer().id(), core.program_counter().id());
        core.write_core_reg(sp_id, RegisterValue::U32(sp))?;
        core.write_core_reg(pc_id, RegisterValue::U32(pc))?;
    }
    core.run()?;
    let start = Instant::now();
    let mut rtt = None;
    let mut stream = log.decoder();
    let mut buf = vec![0u8; 4096];
    loop {
        if rtt.is_none() {
            rtt = probe_rs::rtt::Rtt::attach(&mut core).ok();
        }
        if let Some(r) = rtt.as_mut() {
            if let Some(ch) = r.up_channels().first_mut() {
                let n = ch.read(&mut core, &mut buf)?;
                stream.feed(&buf[..n]).iter().for_each(|l| out(l));
            }
        }
        if let CoreStatus::Halted(HaltReason::Breakpoint(BreakpointCause::Semihosting(cmd))) =
            core.status()?
        {
            match cmd {
                SemihostingCommand::ExitSuccess => return Ok(Exit::Code(0)),
                SemihostingCommand::ExitError(d) => {
                    return Ok(Exit::Code(d.exit_status.unwrap_or(d.reason)))
                }
                // Anything else (console writes): not used by the images; resume.
                _ => core.run()?,
            }
        }
        if start.elapsed() > timeout {
            return Ok(Exit::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

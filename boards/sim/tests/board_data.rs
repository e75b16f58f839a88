//! The sim board's data file (`boards/sim/board.toml`, read by xtask) and its code agree.

use splitrx_sim::shm::map;

#[test]
fn board_toml_memory_map_is_the_code_s() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/board.toml")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let mem = &v["memory"];
    let int = |w: &str, k: &str| mem[w][k].as_integer().unwrap() as u64;
    assert_eq!(v["name"].as_str(), Some("sim"));
    assert_eq!(int("host_window", "bus"), map::HOST_MEM_BUS_BASE);
    assert_eq!(
        int("host_window", "mailbox"),
        map::HOST_MEM_BUS_BASE,
        "the firmware boots from the mailbox at this address"
    );
    assert_eq!(int("gpu_bar", "bus"), map::GPU_BAR_BUS_BASE);
}

#!/bin/sh
# /init of the rxe guest (built by `cargo xtask rxe-guest`, xtask/src/rxe_guest.rs; booted by
# tests/src/rxe.rs). Sets up Linux soft-RoCE on the first NIC, runs the test script QEMU hands
# over through fw_cfg, prints its output between markers on the serial console, powers off.
#
# Kernel command line (all set by `RxeGuest`):
#   splitrx.roce_mac=MAC splitrx.roce_ip=A.B.C.D/N [splitrx.roce_mtu=N]   the RoCE NIC (rxe0)
#   [splitrx.neigh=A.B.C.D@MAC,...]   permanent neighbours on it (a peer that answers no ARP)
#   splitrx.oob_mac=MAC splitrx.oob_ip=A.B.C.D/N [splitrx.oob_gw=A.B.C.D]   the slirp NIC
# (RxeGuest sets no gateway: the guest reaches the host at 10.0.2.2 and nothing beyond.)
# Busybox's sh runs its own applets first: `ip` in a script is busybox's, iproute2's is
# /usr/bin/ip.
# Markers (one line each): "SPLITRX-RXE: READY <uptime s>", "SPLITRX-RXE: BEGIN",
# "SPLITRX-RXE: EXIT <status>", or "SPLITRX-RXE: SETUP-FAILED <why>".
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run /root
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm

say() { echo "SPLITRX-RXE: $*"; }
off() {
    sync
    poweroff -f
    reboot -f
}
fail() {
    say "SETUP-FAILED $*"
    dmesg | tail -n 40
    off
}
arg() {
    for w in $(cat /proc/cmdline); do
        case "$w" in "splitrx.$1="*) echo "${w#*=}" ;; esac
    done
}
nic() {
    for d in /sys/class/net/*; do
        [ "$(cat "$d/address")" = "$1" ] && basename "$d"
    done
}

for m in $(cat /etc/rxe-guest/modules); do
    insmod "/lib/modules/$m.ko" || fail "insmod $m"
done

ip link set lo up
roce=$(nic "$(arg roce_mac)")
[ -n "$roce" ] || fail "no NIC with MAC $(arg roce_mac): $(cat /sys/class/net/*/address)"
[ -n "$(arg roce_mtu)" ] && ip link set "$roce" mtu "$(arg roce_mtu)"
ip addr add "$(arg roce_ip)" dev "$roce" || fail "ip addr add $(arg roce_ip) dev $roce"
ip link set "$roce" up || fail "ip link set $roce up"
for n in $(arg neigh | tr , ' '); do
    /usr/bin/ip neigh replace "${n%@*}" lladdr "${n#*@}" dev "$roce" nud permanent ||
        fail "neighbour $n"
done
oob=$(nic "$(arg oob_mac)")
if [ -n "$oob" ]; then
    ip addr add "$(arg oob_ip)" dev "$oob" || fail "ip addr add $(arg oob_ip) dev $oob"
    ip link set "$oob" up || fail "ip link set $oob up"
    if [ -n "$(arg oob_gw)" ]; then
        ip route add default via "$(arg oob_gw)" dev "$oob" || fail "default route via $(arg oob_gw)"
    fi
fi
rdma link add rxe0 type rxe netdev "$roce" || fail "rdma link add rxe0 type rxe netdev $roce"
i=0
until grep -q ACTIVE /sys/class/infiniband/rxe0/ports/1/state 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 100 ] && fail "rxe0 port 1 not ACTIVE: $(cat /sys/class/infiniband/rxe0/ports/1/state)"
    sleep 0.1
done
# The IPv4 address's GIDs appear once the address is up on the netdev.
i=0
until grep -q "^0000:0000:0000:0000:0000:ffff:" /sys/class/infiniband/rxe0/ports/1/gids/* 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 100 ] && fail "no IPv4-mapped GID on rxe0"
    sleep 0.1
done
# The carrier comes up a moment after `ip link set up` (virtio's link interrupt, then the
# kernel's link watch): until then nothing rxe sends leaves the NIC.
i=0
until [ "$(cat /sys/class/net/$roce/operstate)" = up ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && fail "$roce not up: operstate $(cat /sys/class/net/$roce/operstate)"
    sleep 0.1
done
say "READY $(cut -d' ' -f1 /proc/uptime) roce=$roce oob=$oob"

# Executables the host built for this run (RxeGuest's `files`).
for f in /sys/firmware/qemu_fw_cfg/by_name/opt/splitrx/bin/*/raw; do
    [ -r "$f" ] || continue
    n=${f%/raw}
    n=${n##*/}
    cp "$f" "/usr/bin/$n" && chmod 755 "/usr/bin/$n" || fail "copying $n from fw_cfg"
done
script=/sys/firmware/qemu_fw_cfg/by_name/opt/splitrx/script/raw
[ -r $script ] || fail "no test script in fw_cfg (opt/splitrx/script)"
cp $script /tmp/script.sh
dmesg -n 1
say BEGIN
(cd /tmp && sh /tmp/script.sh </dev/null 2>&1)
say "EXIT $?"
off

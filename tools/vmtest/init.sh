#!/bin/busybox sh
# /init of the vmtest VM (tools/vmtest). Loads KVM (kvm-amd on TCG's SVM)
# and the 9p modules, mounts the host's root read-only at /host and the
# repository read-write at its own path inside it, then runs the job's
# run.sh in a chroot of the host's root and leaves its exit status in the
# job directory for the runner. The kernel command line names the
# repository (vmtest.repo=) and the job directory in it (vmtest.job=).

/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
# The initramfs has no /dev/console node: take the console now.
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys

fail() {
	echo "vmtest: $*"
	[ -n "$jobdir" ] && [ -d "$jobdir" ] && echo 125 >"$jobdir/rc"
	sync
	poweroff -f
}

for w in $(cat /proc/cmdline); do
	case "$w" in
	vmtest.repo=*) repo="${w#*=}" ;;
	vmtest.job=*) job="${w#*=}" ;;
	vmtest.heartbeat=*) heartbeat="${w#*=}" ;;
	esac
done
[ -n "$repo" ] && [ -n "$job" ] || fail "the kernel command line names no vmtest.repo/vmtest.job"

while read -r m; do
	insmod "/modules/$m" || fail "insmod $m failed"
done </modules.order
[ -c /dev/kvm ] || fail "kvm-amd loaded but there is no /dev/kvm"

# 9p with a large msize: file reads of test binaries and guests go faster.
opts=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "$opts,ro" hostroot /host || fail "mount the host's root"
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup 2>/dev/null
mount -t devtmpfs dev /host/dev
mount -t tmpfs -o mode=1777 tmpfs /host/tmp
mount -t tmpfs -o mode=755 tmpfs /host/run
# The repository last: a clone under /tmp or /run would otherwise be
# hidden by the tmpfs mounted there (its mount point is made in the
# tmpfs; elsewhere the read-only host root has it already).
mkdir -p "/host$repo" 2>/dev/null
mount -t 9p -o "$opts" repo "/host$repo" || fail "mount the repository at $repo"
jobdir="/host$repo/$job"
ip link set lo up

# With vmtest.heartbeat=SECONDS, a line every so often: when the lines stop,
# the VM's own timers stopped (docs/testing.md, "Limits of the VM").
if [ -n "$heartbeat" ]; then
	(while sleep "$heartbeat"; do echo "vmtest: heartbeat, up $(cut -d' ' -f1 /proc/uptime) s"; done) &
fi
chroot /host /bin/sh "$repo/$job/run.sh"
echo $? >"$jobdir/rc"
sync
poweroff -f

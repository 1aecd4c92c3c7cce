#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, for the SLURM integration test (and for trying
# 'quantbench sweep --executor slurm' on a laptop). Needs root and Debian's apt (slurm-wlm 22.05, munge).
#
#   scripts/slurm-local.sh start    install if missing, write the config, start munged/slurmctld/slurmd,
#                                   wait until 'sinfo' shows the node idle
#   scripts/slurm-local.sh stop     stop slurmd and slurmctld by their pid files, and munged if start
#                                   started it (a munged that was already running is left alone)
#   scripts/slurm-local.sh status   sinfo
#
# It refuses to overwrite a slurm.conf it did not write (a machine with a real SLURM keeps its own).
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by quantbench scripts/slurm-local.sh"
STATE=/var/lib/quantbench-slurm
HOST=$(hostname -s)

log() { echo "slurm-local: $*" >&2; }

install_packages() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
    [ "$(id -u)" = 0 ] || { log "not root: cannot apt-get install slurm-wlm munge"; return 1; }
    command -v apt-get >/dev/null || { log "no apt-get on this machine"; return 1; }
    log "installing slurm-wlm and munge from the Debian archive"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

start_munge() {
    mkdir -p /etc/munge /var/run/munge /var/log/munge /var/lib/munge "$STATE"
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key /var/run/munge /var/log/munge /var/lib/munge
    chmod 400 /etc/munge/munge.key
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        su -s /bin/sh munge -c /usr/sbin/munged
        sleep 1
        touch "$STATE/munged.ours"  # stop only stops the munged this script started
    fi
    munge -n | unmunge >/dev/null || { log "munge does not work"; return 1; }
}

write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        log "$CONF exists and was not written by this script; leaving it alone"
        return 1
    fi
    local cpus mem
    cpus=$(nproc)
    mem=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
    mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$STATE/log"
    cat > "$CONF" <<EOF
$MARK
ClusterName=quantbench-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
KillWait=5
InactiveLimit=0
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_idle() {
    for _ in $(seq 60); do
        if sinfo -h -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
            sinfo
            return 0
        fi
        sleep 1
    done
    log "the node did not become idle; see $STATE/log/"
    tail -5 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
    return 1
}

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    install_packages
    start_munge
    write_config
    running "$STATE/slurmctld.pid" || slurmctld
    running "$STATE/slurmd.pid" || slurmd
    wait_idle
    log "cluster up: node $HOST, $(nproc) CPUs, partition debug"
}

stop_pidfile() {
    local pid
    running "$1" || return 0
    pid=$(cat "$1")
    kill "$pid"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
}

stop() {
    stop_pidfile "$STATE/slurmd.pid"
    stop_pidfile "$STATE/slurmctld.pid"
    if [ -e "$STATE/munged.ours" ]; then
        stop_pidfile /var/run/munge/munged.pid
        rm -f "$STATE/munged.ours"
    else
        log "munged was running before start: left running"
    fi
    log "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A throw-away single-node Slurm cluster on this machine, for tests and for trying the Slurm
# profile: `bash scripts/slurm-local.sh start|stop|status`.
#
# start   installs Debian's slurm-wlm and munge if missing, writes /etc/slurm/slurm.conf and
#         gres.conf for this machine (cons_tres, no cgroups, fake GPUs "gpu:testgpu:N" whose
#         device files are /dev/null and /dev/zero (N = 2 by default), partitions "cpu"
#         (default) and "gpu" as in workflow/profiles/slurm plus "urgent" whose jobs
#         pre-empt (requeue) theirs after a KillWait (10 s) to checkpoint, job completion log
#         in a text file, no slurmdbd), wipes the spool and state directories of any earlier
#         run, starts munged (as the munge user), slurmctld and slurmd, and waits until
#         `sinfo` shows the node idle.
# stop    cancels the cluster's jobs and stops the daemons this script started, by pid.
# status  says whether the daemons are up and prints `sinfo`.
#
# Needs root (it installs packages and starts daemons) and, on first use, apt-get. No systemd.
# Exit codes: 0 ok; 1 the daemons failed (logs printed); 3 this machine cannot run it
# (not root, no apt-get, package install failed); 64 usage.
#
# Environment (all optional):
#   SLURM_LOCAL_DIR        state directory (pids, spool, logs, job completion log);
#                          default /var/tmp/synreal-slurm
#   SLURM_LOCAL_GPU_MODEL  GRES type of the fake GPUs; default testgpu
#   SLURM_LOCAL_GPUS       how many fake GPUs the node has, 1 or 2; default 2 (two GPU jobs
#                          at once, one per CPU of a 2-CPU runner)
#   SLURM_LOCAL_TIMEOUT    seconds to wait for the node to become idle; default 60
set -euo pipefail

STATE_DIR=${SLURM_LOCAL_DIR:-/var/tmp/synreal-slurm}
GPU_MODEL=${SLURM_LOCAL_GPU_MODEL:-testgpu}
GPUS=${SLURM_LOCAL_GPUS:-2}
# One character device per fake GPU: nothing behind them, Slurm only counts and indexes them.
GPU_FILES=(/dev/null /dev/zero)
if [[ $GPUS != 1 && $GPUS != 2 ]]; then
    echo "slurm-local: SLURM_LOCAL_GPUS must be 1 or 2, not '$GPUS'." >&2
    exit 64
fi
WAIT_S=${SLURM_LOCAL_TIMEOUT:-60}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES_CONF=$CONF_DIR/gres.conf
MARKER="# written by synreal scripts/slurm-local.sh"
PID_DIR=$STATE_DIR/pids
# Long enough that squeue still lists finished jobs when the executor polls (it checks every
# few seconds in the test profile, and needs MinJobAge >= 3 x its initial status interval).
MIN_JOB_AGE=600
# GraceTime of the pre-emptable partitions: 0 means SIGTERM, KillWait seconds to save a
# checkpoint, SIGKILL, requeue. (A job that exits by itself during a non-zero GraceTime is
# recorded as FAILED and not requeued; Snakemake's retries then resubmit it.)
GRACE_S=0

say() { printf 'slurm-local: %s\n' "$*"; }
die() { local code=$1; shift; printf 'slurm-local: error: %s\n' "$*" >&2; exit "$code"; }

usage() {
    printf 'usage: %s start|stop|status\n' "$0" >&2
    exit 64
}

# ---------------------------------------------------------------- installation

require_root() {
    [[ $(id -u) -eq 0 ]] || die 3 "must run as root (installs packages, starts daemons); this is uid $(id -u)"
}

install_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null || die 3 "missing ${missing[*]} and no apt-get to install them"
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"${TMPDIR:-/tmp}/slurm-local-apt.log" 2>&1; then
        tail -n 20 "${TMPDIR:-/tmp}/slurm-local-apt.log" >&2
        die 3 "apt-get install ${missing[*]} failed (log above)"
    fi
}

# ---------------------------------------------------------------- configuration

node_field() {  # node_field CPUs -> value from `slurmd -C` (the machine's real hardware)
    slurmd -C | head -n 1 | tr ' ' '\n' | sed -n "s/^$1=//p"
}

write_config() {
    if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
        die 3 "$CONF exists and was not written by this script; refusing to overwrite a real Slurm setup"
    fi
    local host cpus boards sockets cores threads memory
    host=$(hostname -s)
    cpus=$(node_field CPUs)
    boards=$(node_field Boards)
    sockets=$(node_field SocketsPerBoard)
    cores=$(node_field CoresPerSocket)
    threads=$(node_field ThreadsPerCore)
    memory=$(node_field RealMemory)
    mkdir -p "$CONF_DIR"
    cat >"$CONF" <<EOF
$MARKER: a single-node test cluster.
ClusterName=synreal-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
# No cgroups: containers and CI runners rarely delegate them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# No slurmdbd: sacct cannot answer, so finished jobs are recorded in a text file instead and
# kept in slurmctld's memory (squeue) for MinJobAge seconds.
AccountingStorageType=accounting_storage/none
# (AccountingStorageTRES=gres/gpu would need slurmdbd: slurmctld refuses to start with it.
# GPU allocations are visible in "scontrol show job -d" and in the job's environment.)
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE_DIR/jobcomp.log
MinJobAge=$MIN_JOB_AGE
KillWait=10
InactiveLimit=0
SlurmdTimeout=120
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$memory Gres=gpu:$GPU_MODEL:$GPUS State=UNKNOWN
# Pre-emption as on shared clusters: a job in a higher PriorityTier partition takes the
# node; the running job gets SIGTERM, KillWait seconds to save a checkpoint, SIGKILL, and
# is requeued (it must be submitted with --requeue, as the Slurm profiles do).
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
# The partition names of workflow/profiles/slurm, so that profile runs here unchanged, and
# "urgent", whose jobs pre-empt theirs (tests/cluster uses it to pre-empt a pretraining job).
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=$GRACE_S
PartitionName=gpu Nodes=ALL Default=NO MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=$GRACE_S
PartitionName=urgent Nodes=ALL Default=NO MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
    cat >"$GRES_CONF" <<EOF
$MARKER: $GPUS fake GPUs (no device behind them).
AutoDetect=off
$(for ((i = 0; i < GPUS; i++)); do echo "NodeName=$host Name=gpu Type=$GPU_MODEL File=${GPU_FILES[i]}"; done)
EOF
    say "wrote $CONF ($host: $cpus CPUs, $memory MB, gpu:$GPU_MODEL:$GPUS, partitions cpu, gpu, urgent)"
}

# ---------------------------------------------------------------- processes

pid_alive() {  # pid_alive FILE NAME: the pid in FILE is a running process called NAME
    local file=$1 name=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$name" ]]
}

node_state() {  # bounded: sinfo retries for a long time when slurmctld is down
    timeout 5 sinfo --noheader --format=%T 2>/dev/null | head -n 1 || true
}

stop_pid() {  # stop_pid NAME: TERM (then KILL) the NAME process this script recorded
    local name=$1 file=$PID_DIR/$1.pid pid
    if ! pid_alive "$file" "$name"; then
        rm -f "$file"
        return 0
    fi
    pid=$(<"$file")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        [[ -d /proc/$pid ]] || break
        sleep 0.2
    done
    if [[ -d /proc/$pid ]]; then
        say "$name ($pid) ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
    say "stopped $name ($pid)"
}

start_munge() {
    if pid_alive /run/munge/munged.pid munged; then
        say "munged already running (pid $(</run/munge/munged.pid)); using it"
        return 0
    fi
    [[ -s /etc/munge/munge.key ]] || {
        if command -v mungekey >/dev/null; then mungekey --create --force; else
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
    }
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge/munge.key
    chmod 0755 /run/munge
    chmod 0400 /etc/munge/munge.key
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 50); do
        pid_alive /run/munge/munged.pid munged && break
        sleep 0.1
    done
    pid_alive /run/munge/munged.pid munged || die 1 "munged did not start (see /var/log/munge/munged.log)"
    cp /run/munge/munged.pid "$PID_DIR/munged.pid"
    munge -n | unmunge >/dev/null || die 1 "munge round trip failed"
    say "started munged (pid $(<"$PID_DIR"/munged.pid))"
}

start_daemon() {  # start_daemon NAME: start slurmctld or slurmd, record its pid
    local name=$1 pidfile=$STATE_DIR/run/$1.pid
    "/usr/sbin/$name" -f "$CONF"
    for _ in $(seq 100); do
        pid_alive "$pidfile" "$name" && break
        sleep 0.1
    done
    if ! pid_alive "$pidfile" "$name"; then
        tail -n 30 "$STATE_DIR/log/$name.log" >&2 || true
        die 1 "$name did not start (log above: $STATE_DIR/log/$name.log)"
    fi
    cp "$pidfile" "$PID_DIR/$name.pid"
    if [[ $name == slurmctld ]]; then
        # It writes its pid file before reading all of its configuration: a fatal error
        # (e.g. an option that needs slurmdbd) comes a moment later. Wait until it answers.
        for _ in $(seq 50); do
            timeout 5 scontrol ping 2>/dev/null | grep -q UP && break
            pid_alive "$pidfile" "$name" || break
            sleep 0.2
        done
        if ! timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
            tail -n 30 "$STATE_DIR/log/$name.log" >&2 || true
            die 1 "$name does not answer (log above: $STATE_DIR/log/$name.log)"
        fi
    fi
    say "started $name (pid $(<"$PID_DIR/$name.pid"))"
}

wait_idle() {
    local state="" deadline=$((SECONDS + WAIT_S))
    while ((SECONDS < deadline)); do
        state=$(node_state)
        [[ $state == idle ]] && return 0
        sleep 0.2
    done
    tail -n 20 "$STATE_DIR/log/slurmctld.log" "$STATE_DIR/log/slurmd.log" >&2 || true
    sinfo -N -l >&2 || true
    die 1 "node not idle after ${WAIT_S}s (state: '${state:-no answer}'; logs above)"
}

# ---------------------------------------------------------------- commands

running() {
    pid_alive "$PID_DIR/slurmctld.pid" slurmctld && pid_alive "$PID_DIR/slurmd.pid" slurmd
}

cmd_start() {
    require_root
    if running && [[ $(node_state) =~ ^(idle|mixed|allocated)$ ]]; then
        say "already running (state dir $STATE_DIR)"
        return 0
    fi
    install_packages
    cmd_stop >/dev/null
    local started=$SECONDS
    # Stale node and job state survives restarts (a node "down" or "drained" from the last
    # run); start from nothing every time.
    rm -rf "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" "$STATE_DIR/run" "$STATE_DIR/log"
    mkdir -p "$STATE_DIR"/{slurmctld,slurmd,run,log} "$PID_DIR"
    : >"$STATE_DIR/jobcomp.log"
    write_config
    start_munge
    start_daemon slurmctld
    start_daemon slurmd
    wait_idle
    say "node idle after $((SECONDS - started))s; try: sinfo; sbatch --wrap hostname"
}

cmd_stop() {
    require_root
    if pid_alive "$PID_DIR/slurmctld.pid" slurmctld; then
        # Only this script's cluster runs here: cancel its jobs so no slurmstepd outlives it.
        squeue --noheader --format=%i 2>/dev/null | xargs -r scancel 2>/dev/null || true
    fi
    stop_pid slurmd
    stop_pid slurmctld
    stop_pid munged
}

cmd_status() {
    if running; then
        say "running: slurmctld $(<"$PID_DIR/slurmctld.pid"), slurmd $(<"$PID_DIR/slurmd.pid"); node $(node_state)"
        sinfo
    else
        say "not running (state dir $STATE_DIR)"
        return 1
    fi
}

[[ $# -eq 1 ]] || usage
case $1 in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) usage ;;
esac

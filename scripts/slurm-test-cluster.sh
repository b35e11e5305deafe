#!/usr/bin/env bash
# A one-node Slurm cluster on 127.0.0.1 for the tests (test/slurm.ts), no systemd:
#   slurm-test-cluster.sh start DIR CTLD_PORT SLURMD_PORT   writes DIR/slurm.conf, starts munged
#                                                            (unless one runs), slurmctld, slurmd
#   slurm-test-cluster.sh stop DIR                           stops this cluster's slurmctld and slurmd
# One node (this machine's short hostname at 127.0.0.1, 2 CPUs), one `debug` partition, its own
# state, spool, pid and log files under DIR. Clients find it with SLURM_CONF=DIR/slurm.conf.
# Root is needed (slurmd starts jobs as their user; munged runs as user munge).
set -euo pipefail

cmd=${1:?usage: slurm-test-cluster.sh start DIR CTLD_PORT SLURMD_PORT | stop DIR}
dir=${2:?the cluster folder}

pid_of() { [ -s "$1" ] && cat "$1"; }

stop() {
  local pidfile pid
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    pid=$(pid_of "$pidfile" || true)
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

start() {
  local ctld_port=${3:?slurmctld port} slurmd_port=${4:?slurmd port} node
  node=$(hostname -s)
  mkdir -p "$dir/state" "$dir/spool"
  cat > "$dir/slurm.conf" <<CONF
ClusterName=steelscope-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ReturnToService=2
MinJobAge=600
KillWait=10
# A requeued job may start again cred_expire + 1 s later (Slurm's default: 120 s); the tests requeue jobs.
AuthInfo=cred_expire=30
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MessageTimeout=20
JobRequeue=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
  if ! pgrep -u munge -x munged >/dev/null 2>&1; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
  fi
  stop
  slurmctld -f "$dir/slurm.conf"
  slurmd -f "$dir/slurm.conf"
  export SLURM_CONF=$dir/slurm.conf
  for _ in $(seq 1 200); do
    # A daemon that could not start (its port taken, say) logs "fatal:" and exits: say so now
    # rather than after sinfo calls that each wait MessageTimeout for a slurmctld that is not there.
    if grep -hs 'fatal:' "$dir/slurmctld.log" "$dir/slurmd.log" >&2; then
      echo "slurm-test-cluster: a daemon did not start; see $dir/slurmctld.log and $dir/slurmd.log" >&2
      return 1
    fi
    if sinfo -h -o '%T' 2>/dev/null | grep -qx 'idle'; then echo "slurm-test-cluster: up ($dir)"; return 0; fi
    sleep 0.1
  done
  echo "slurm-test-cluster: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
  sinfo >&2 || true
  return 1
}

case $cmd in
  start) start "$@" ;;
  stop) stop ;;
  *) echo "usage: slurm-test-cluster.sh start DIR CTLD_PORT SLURMD_PORT | stop DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# The Debian package, used the way an operator would: build it (scripts/package.sh, reusing the
# test build's binary), `dpkg -i` it on this machine, run the installed berth on the installed
# config, `systemd-analyze verify` the installed unit, check the berth user, its docker group
# and the conffile, then `dpkg -P` it and check that nothing is left.
#   deb_test.sh SOURCE_DIR BERTH_BINARY WORK_DIR
# Needs root (CI runs the suite as root). It refuses to start, and FAILS, when a berth package,
# user, group or file already exists: it never removes anything it did not install.
set -uo pipefail
src=$1 binary=$2 work=$3

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

[[ $(id -u) -eq 0 ]] || fail "must run as root (dpkg -i / dpkg -P); CI runs the suite as root"
for tool in dpkg dpkg-deb dpkg-query cpack cmake ninja systemd-analyze man getent runuser setpriv flock /usr/bin/python3; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

# One package test at a time on this machine (other build trees run the same test).
exec 9>/var/lock/berth-package-test.lock
flock -w 600 9 || fail "another berth package test holds /var/lock/berth-package-test.lock"

unit=/lib/systemd/system/berth.service
leftovers() {
  local found=()
  dpkg-query -W -f='${Status}' berth 2>/dev/null | grep -qv "not-installed" && found+=("package berth ($(dpkg-query -W -f='${Status}' berth))")
  getent passwd berth >/dev/null && found+=("user berth")
  getent group berth >/dev/null && found+=("group berth")
  for f in /usr/bin/berth /etc/berth "$unit" /var/lib/berth /var/log/berth /etc/logrotate.d/berth \
           /usr/share/doc/berth /usr/share/berth \
           /usr/share/man/man8/berth.8 /etc/systemd/system/multi-user.target.wants/berth.service; do
    [[ -e $f || -L $f ]] && found+=("$f")
  done
  printf '%s\n' "${found[@]}"
}
before=$(leftovers)
[[ -z $before ]] || fail "berth is already on this machine; not touching what is not this test's:
$before"
docker_group_before=$(getent group docker | cut -d: -f1,3)

installed=0
cleanup() {
  if ((installed)); then dpkg -P berth >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step "build the package (scripts/package.sh, binary $binary)"
rm -rf "$work"
deb=$(BERTH_PACKAGE_BINARY="$binary" bash "$src/scripts/package.sh" "$work") || fail "scripts/package.sh failed"
version=$(sed -n 's/^project(berth VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[[ $(basename "$deb") == "berth_${version}_amd64.deb" ]] || fail "package is named $(basename "$deb"), expected berth_${version}_amd64.deb"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libc6 libstdc++6 libuv1 libssl3 libyaml-cpp0.7 adduser; do
  [[ $depends == *"$lib"* ]] || fail "Depends lacks $lib (shlibdeps): $depends"
done

step "dpkg -i"
installed=1
dpkg -i "$deb" || fail "dpkg -i failed"
[[ $(dpkg-query -W -f='${Status}' berth) == "install ok installed" ]] || fail "berth is not 'install ok installed'"

step "the installed files"
for f in /usr/bin/berth /etc/berth/berth.yaml "$unit" /etc/logrotate.d/berth /usr/share/doc/berth/berth.example.yaml \
         /usr/share/man/man8/berth.8; do
  [[ -f $f ]] || fail "$f is missing"
done
if [[ -d $src/config/prometheus ]] && compgen -G "$src/config/prometheus/*.yml" >/dev/null; then
  for r in "$src"/config/prometheus/*.yml; do
    [[ -f /usr/share/berth/$(basename "$r") ]] || fail "Prometheus rules $(basename "$r") not in /usr/share/berth"
  done
fi
man -l /usr/share/man/man8/berth.8 2>/dev/null | grep -q "EXIT STATUS" || fail "berth(8) does not render"

step "the installed berth"
/usr/bin/berth --version | tee /dev/stderr | grep -Eq "^berth $version \(commit [^)]+\)$" || fail "berth --version"
out=$(/usr/bin/berth --check-config /etc/berth/berth.yaml 2>&1) || fail "berth --check-config /etc/berth/berth.yaml: $out"
echo "$out"
# The unit runs it as the berth user: the config must be readable by it.
out=$(runuser -u berth -- /usr/bin/berth --check-config /etc/berth/berth.yaml 2>&1) ||
  fail "as user berth: berth --check-config /etc/berth/berth.yaml: $out"

step "the installed berth as the berth user, with a datagram socket standing in for systemd"
# What the unit does: berth as user berth with its groups, \$NOTIFY_SOCKET set. READY=1 once it
# serves, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 at SIGTERM, then exit 0.
tmp=$(mktemp -d)
chmod 0755 "$tmp"
printf 'listeners: ["127.0.0.1:0"]\nworkers: 1\nadmin: {address: "127.0.0.1:0"}\n' >"$tmp/berth.yaml"
chmod 0644 "$tmp/berth.yaml"
/usr/bin/python3 - "$tmp" <<'PY' || fail "the notify protocol with the installed berth (log: $(tail -5 "$tmp/berth.log" 2>/dev/null))"
import os, signal, socket, subprocess, sys
tmp = sys.argv[1]
path = os.path.join(tmp, "notify.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
s.settimeout(10)
env = dict(os.environ, NOTIFY_SOCKET=path)
with open(os.path.join(tmp, "berth.log"), "wb") as log:
    p = subprocess.Popen(["setpriv", "--reuid=berth", "--regid=berth", "--init-groups", "/usr/bin/berth",
                          "--config", os.path.join(tmp, "berth.yaml")], env=env, stdout=log, stderr=log)
try:
    def expect(what):
        try:
            m = s.recv(4096).decode()
        except socket.timeout:
            sys.exit("no datagram within 10 s, expected " + what)
        print("notify:", m.replace("\n", " ").strip())
        if what not in m.split("\n"):
            sys.exit("expected %s, got %r" % (what, m))
    expect("READY=1")
    p.send_signal(signal.SIGHUP)
    expect("RELOADING=1")
    expect("READY=1")
    p.send_signal(signal.SIGTERM)
    expect("STOPPING=1")
    rc = p.wait(timeout=15)
    if rc != 0:
        sys.exit("berth exited %d after SIGTERM" % rc)
finally:
    if p.poll() is None:
        p.kill()
        p.wait()
PY
grep -q "event=ready" "$tmp/berth.log" || fail "no event=ready in the log"
rm -rf "$tmp"

step "systemd-analyze verify"
# verify exits 0 on keys it ignores (systemd 252): any message is a failure here.
verify() { local o; o=$(systemd-analyze verify "$1" 2>&1); local rc=$?; printf '%s' "$o"; ((rc == 0)) && [[ -z $o ]]; }
out=$(verify "$unit") || fail "systemd-analyze verify $unit: $out"
# ...and the check does catch a broken unit: a misspelt key, a bad Type=, a missing binary.
tmp=$(mktemp -d)
for breakage in 's/^ProtectHome=/ProtectHomme=/' 's/^Type=notify/Type=notifyy/' 's#^ExecStart=/usr/bin/berth#ExecStart=/usr/bin/berth-missing#'; do
  sed "$breakage" "$unit" >"$tmp/berth.service"
  cmp -s "$unit" "$tmp/berth.service" && fail "breakage $breakage changed nothing"
  out=$(verify "$tmp/berth.service") && fail "systemd-analyze verify accepted a broken unit ($breakage)"
  echo "broken unit ($breakage) rejected: $(echo "$out" | head -1)"
done
rm -rf "$tmp"
for line in Type=notify "ExecStartPre=/usr/bin/berth --check-config /etc/berth/berth.yaml" \
            "ExecReload=/usr/bin/berth --check-config /etc/berth/berth.yaml" 'ExecReload=/bin/kill -HUP $MAINPID' \
            NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
            CapabilityBoundingSet=CAP_NET_BIND_SERVICE AmbientCapabilities=CAP_NET_BIND_SERVICE \
            StateDirectory=berth User=berth; do
  grep -qxF -- "$line" "$unit" || fail "$unit lacks '$line'"
done

step "the berth user"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd berth)
((uid < 1000)) || fail "berth is not a system user (uid $uid)"
[[ $shell == /usr/sbin/nologin ]] || fail "berth's shell is $shell"
[[ $home == /var/lib/berth ]] || fail "berth's home is $home"
id -nG berth | tr ' ' '\n' | grep -qx docker || fail "berth is not in the docker group: $(id -nG berth)"
[[ $(stat -c %U /var/lib/berth) == berth ]] || fail "/var/lib/berth is not owned by berth"

step "the conffile"
conffiles=$(dpkg-query -W --showformat='${Conffiles}' berth)
echo "$conffiles"
grep -Eq "^ /etc/berth/berth.yaml [0-9a-f]{32}$" <<<"$conffiles" || fail "/etc/berth/berth.yaml is not a conffile: $conffiles"
grep -Eq "^ /etc/logrotate.d/berth [0-9a-f]{32}$" <<<"$conffiles" || fail "/etc/logrotate.d/berth is not a conffile: $conffiles"

step "logrotate takes the rotation file (a dry run, as the berth user's files would be)"
install -d -o berth -g berth /var/log/berth && touch /var/log/berth/access.log && chown berth:berth /var/log/berth/access.log
out=$(logrotate -d -s "$work/logrotate.state" /etc/logrotate.d/berth 2>&1) || fail "logrotate -d /etc/logrotate.d/berth: $out"
grep -q "rotating pattern: /var/log/berth/\*.log" <<<"$out" || fail "logrotate did not read the pattern: $out"
grep -qi "error" <<<"$out" && fail "logrotate -d reports an error: $out"

step "not started without systemd as PID 1"
if [[ ! -d /run/systemd/system ]]; then
  [[ ! -e /etc/systemd/system/multi-user.target.wants/berth.service ]] || fail "postinst enabled the unit without systemd"
  pgrep -u berth >/dev/null && fail "a process runs as berth after install"
fi

step "dpkg -P"
# /var/log/berth (what systemd's LogsDirectory=berth makes), with a log in it: the purge removes it.
dpkg -P berth || fail "dpkg -P failed"
installed=0
after=$(leftovers)
[[ -z $after ]] || fail "left behind by dpkg -P:
$after"
[[ $(getent group docker | cut -d: -f1,3) == "$docker_group_before" ]] || fail "the docker group changed: '$docker_group_before' -> '$(getent group docker | cut -d: -f1,3)'"
echo "PASS: package built, installed, checked and purged"

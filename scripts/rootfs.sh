#!/bin/sh
# Assembles the run-time root filesystem of the iocmng container image from this machine's files:
# exactly what the binary needs at run time and nothing else. The Dockerfile's last stage is
# `FROM scratch` + `COPY --from=rootfs /rootfs /`, and runs this same script, so the tree can be
# checked here without a Docker engine (test/rootfs/ chroots into it).
#
#   scripts/rootfs.sh <outdir> [binary]      (binary defaults to dist/iocmng)
#
# Contents (merged-/usr layout, like Debian):
#   /usr/local/bin/iocmng                 the single executable (needs glibc only)
#   /usr/bin/git, /usr/lib/git-core/...   git + git-remote-http(s) (clone over https) and
#                                         git-upload-pack (clone from file:// and local paths)
#   /usr/bin/dash as /bin/sh              git starts local transports through `sh -c`
#   /usr/lib/x86_64-linux-gnu/libca...    libca + libCom for the Channel Access client (bun:ffi)
#   shared libraries                      every library the above link (from ldd), + ld.so
#   /etc/ssl/certs/ca-certificates.crt    CA bundle for https clones
#   /etc/passwd, /etc/group               root and the unprivileged user iocmng (10001)
#   /data (owned by 10001), /tmp (1777)
set -eu

usage() { echo "usage: $0 <outdir> [binary]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
out=$1
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${2:-$here/dist/iocmng}
[ -x "$bin" ] || { echo "rootfs: $bin is not an executable (run: bun run build)" >&2; exit 1; }
case "$out" in ""|/) echo "rootfs: refusing to write to '$out'" >&2; exit 1 ;; esac

IOCMNG_UID=10001
IOCMNG_GID=10001

# Where libraries go regardless of the /lib vs /usr/lib spelling ldd reports.
norm() {
  case "$1" in
    /lib/*|/lib64/*|/bin/*|/sbin/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}

# add SRC [DEST]: copy SRC (symlinks followed) to $out/DEST; DEST defaults to SRC's normalised path.
add() {
  src=$1
  dest=$(norm "${2:-$1}")
  [ -e "$src" ] || { echo "rootfs: missing $src on the build machine" >&2; exit 1; }
  mkdir -p "$out$(dirname "$dest")"
  cp -L "$src" "$out$dest"
}

# add_deps FILE: every shared library FILE needs (ldd), and the dynamic loader.
add_deps() {
  ldd "$1" | while read -r a b c _; do
    # Lines look like: "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or
    # "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
    if [ "$b" = "=>" ]; then
      case "$c" in
        /*) [ -e "$out$(norm "$c")" ] || add "$c" ;;
        *) echo "rootfs: $1 needs $a which is not found on the build machine" >&2; exit 1 ;;
      esac
    else
      case "$a" in /*) [ -e "$out$(norm "$a")" ] || add "$a" ;; esac
    fi
  done
}

multiarch=/usr/lib/x86_64-linux-gnu
[ -d "$multiarch" ] || { echo "rootfs: only x86_64 Debian/Ubuntu build hosts are supported" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/usr/bin" "$out/usr/lib" "$out/usr/lib64" "$out/usr/local/bin" "$out/etc/ssl/certs" \
  "$out/proc" "$out/dev" "$out/sys"
# Merged /usr: the kernel asks for /lib64/ld-linux-x86-64.so.2 and git for /bin/sh.
ln -s usr/bin "$out/bin"
ln -s usr/lib "$out/lib"
ln -s usr/lib64 "$out/lib64"

# The executable.
add "$bin" /usr/local/bin/iocmng
chmod 0755 "$out/usr/local/bin/iocmng"
add_deps "$bin"

# git: the main binary, the exec-path helpers clone uses, and their libraries.
add /usr/bin/git
add_deps /usr/bin/git
mkdir -p "$out/usr/lib/git-core"
add /usr/lib/git-core/git-remote-http
add_deps /usr/lib/git-core/git-remote-http
ln -s git-remote-http "$out/usr/lib/git-core/git-remote-https"
ln -s ../../bin/git "$out/usr/lib/git-core/git"
ln -s ../../bin/git "$out/usr/lib/git-core/git-upload-pack"
ln -s git "$out/usr/bin/git-upload-pack"
# An empty templates dir: git init/clone would warn on every clone without one (none are needed).
mkdir -p "$out/usr/share/git-core/templates"
add /usr/bin/dash
add_deps /usr/bin/dash
ln -s dash "$out/usr/bin/sh"

# Channel Access client libraries (loaded with dlopen by bun:ffi, so ldd of the binary misses them).
for lib in "$multiarch"/libca.so.* "$multiarch"/libCom.so.*; do
  [ -e "$lib" ] || { echo "rootfs: $lib missing (apt-get install libca4.13.5)" >&2; exit 1; }
  add "$lib"
  add_deps "$lib"
done
# glibc loads libgcc_s with dlopen for thread cancellation and backtraces.
[ -e "$out$multiarch/libgcc_s.so.1" ] || add "$multiarch/libgcc_s.so.1"

# The canonical loader path the kernel reads from the ELF header.
if [ ! -e "$out/usr/lib64/ld-linux-x86-64.so.2" ]; then
  ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$out/usr/lib64/ld-linux-x86-64.so.2"
fi
[ -e "$out$multiarch/ld-linux-x86-64.so.2" ] || add "$multiarch/ld-linux-x86-64.so.2"

add /etc/ssl/certs/ca-certificates.crt

cat > "$out/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/usr/sbin/nologin
iocmng:x:$IOCMNG_UID:$IOCMNG_GID:iocmng:/data:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat > "$out/etc/group" <<GROUP
root:x:0:
iocmng:x:$IOCMNG_GID:
nogroup:x:65534:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$out/etc/nsswitch.conf"
# Container runtimes bind-mount their own /etc/hosts and /etc/resolv.conf over these.
printf '127.0.0.1 localhost\n::1 localhost\n' > "$out/etc/hosts"
: > "$out/etc/resolv.conf"

mkdir -p "$out/tmp" "$out/data/plugins" "$out/data/state" "$out/root"
chmod 1777 "$out/tmp"
if [ "$(id -u)" = 0 ]; then
  chown -R "$IOCMNG_UID:$IOCMNG_GID" "$out/data"
else
  echo "rootfs: not root, /data is not owned by $IOCMNG_UID (the Dockerfile runs this as root)" >&2
fi

echo "rootfs: $(du -sh "$out" | cut -f1) in $out ($(find "$out" -type f | wc -l) files)"

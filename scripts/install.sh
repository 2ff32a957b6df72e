#!/usr/bin/env bash
# Builds extentdb with the Swift runtime linked statically and installs it with its manual page, shell
# completions, the systemd unit and an example configuration. The binary then needs only Debian's
# libsqlite3-0, zlib1g, libzstd1 and the C/C++ runtime, not the Swift toolchain: copy the installed tree
# (or the .deb of scripts/package-deb.sh) to a host that has no Swift.
#
#   scripts/install.sh [--prefix DIR] [--binary FILE] [--unit-dir DIR] [--sysconfdir DIR]
#
#   --prefix DIR      where bin/, share/man, share/*completion* go (default /usr/local)
#   --binary FILE     install this already-built extentdb instead of building (still checked with ldd)
#   --unit-dir DIR    where extentdb.service goes (default /etc/systemd/system)
#   --sysconfdir DIR  where extentdb/ (configuration, token) goes (default /etc)
#   DESTDIR=DIR       stage everything under DIR (packaging): no user is created, no token is written, no
#                     ownership is changed and systemd is not told
#
# Run it again at any time: files are replaced, the configuration and the token are kept as they are.
# Without DESTDIR it also creates the `extentdb` system user, /etc/extentdb (0750, root:extentdb) and
# /etc/extentdb/token (0600 root, a random token unless one is there), and runs `systemctl daemon-reload`
# when systemd is running. It never enables or starts the service.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

prefix=/usr/local
binary=""
unit_dir=/etc/systemd/system
sysconfdir=/etc
while (($# > 0)); do
    case $1 in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --binary) binary=${2:?--binary needs a file}; shift 2 ;;
        --binary=*) binary=${1#*=}; shift ;;
        --unit-dir) unit_dir=${2:?--unit-dir needs a directory}; shift 2 ;;
        --unit-dir=*) unit_dir=${1#*=}; shift ;;
        --sysconfdir) sysconfdir=${2:?--sysconfdir needs a directory}; shift 2 ;;
        --sysconfdir=*) sysconfdir=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $prefix in /*) ;; *) echo "install.sh: --prefix must be absolute: $prefix" >&2; exit 2 ;; esac
prefix=${prefix%/}
DESTDIR=${DESTDIR:-}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SWIFT=${SWIFT:-swift}
say() { echo "install.sh: $*"; }

# 1. The binary: a release build with the Swift runtime linked in.
if [[ -z $binary ]]; then
    say "building (swift build -c release --static-swift-stdlib --product extentdb)"
    (cd "$REPO_DIR" && "$SWIFT" build -c release --static-swift-stdlib --product extentdb)
    binary=$(cd "$REPO_DIR" && "$SWIFT" build -c release --static-swift-stdlib --show-bin-path)/extentdb
fi
[[ -x $binary ]] || { echo "install.sh: no executable at $binary" >&2; exit 1; }

# It must need nothing outside the system's library directories (no /opt/swift, nothing missing).
libraries=$(ldd "$binary")
if bad=$(grep -E 'not found|=> /' <<<"$libraries" | grep -vE '=> /(usr/)?lib(64)?/[^ ]+ \('); then
    echo "install.sh: $binary needs libraries outside the system's:" >&2
    echo "$bad" >&2
    exit 1
fi

# 2. Manual page and completions, made by the binary being installed (swift-argument-parser's generators:
# the manual from --experimental-dump-help through generate-manual, see scripts/generate-manual.sh).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$REPO_DIR/scripts/generate-manual.sh" "$binary" "$work/extentdb.1"
for shell in bash zsh fish; do
    "$binary" --generate-completion-script "$shell" > "$work/completion.$shell"
done
sed -i '1{/^#!/d}' "$work/completion.bash"   # sourced by bash-completion, never run
version=$("$binary" --version)

# 3. Files.
root=$DESTDIR
install -d -m 755 "$root$prefix/bin" "$root$prefix/share/man/man1" "$root$prefix/share/bash-completion/completions" \
    "$root$prefix/share/zsh/site-functions" "$root$prefix/share/fish/vendor_completions.d" "$root$unit_dir"
install -m 755 "$binary" "$root$prefix/bin/extentdb.new"
mv -f "$root$prefix/bin/extentdb.new" "$root$prefix/bin/extentdb"   # a running service keeps the old inode
install -m 644 "$work/extentdb.1" "$root$prefix/share/man/man1/extentdb.1"
install -m 644 "$work/completion.bash" "$root$prefix/share/bash-completion/completions/extentdb"
install -m 644 "$work/completion.zsh" "$root$prefix/share/zsh/site-functions/_extentdb"
install -m 644 "$work/completion.fish" "$root$prefix/share/fish/vendor_completions.d/extentdb.fish"
sed -e "s|^ExecStart=/usr/local/bin/extentdb |ExecStart=$prefix/bin/extentdb |" \
    -e "s|/etc/extentdb/|$sysconfdir/extentdb/|g" \
    "$REPO_DIR/contrib/extentdb.service" > "$work/extentdb.service"
grep -q "^ExecStart=$prefix/bin/extentdb serve" "$work/extentdb.service"
install -m 644 "$work/extentdb.service" "$root$unit_dir/extentdb.service"

# 4. Configuration directory, example configuration, user and token.
config_dir=$root$sysconfdir/extentdb
install -d -m 750 "$config_dir"
chmod 750 "$config_dir"
if [[ ! -e $config_dir/extentdb.conf ]]; then
    install -m 640 "$REPO_DIR/contrib/extentdb.conf" "$config_dir/extentdb.conf"
else
    say "kept $sysconfdir/extentdb/extentdb.conf"
fi
if [[ -z $DESTDIR ]]; then
    if ! getent passwd extentdb > /dev/null; then
        useradd --system --user-group --home-dir /var/lib/extentdb --no-create-home --shell /usr/sbin/nologin \
            --comment "extentdb allocation index service" extentdb
        say "created the system user extentdb"
    fi
    chown root:extentdb "$config_dir" "$config_dir/extentdb.conf"
    token=$config_dir/token
    if [[ -L $token ]]; then
        echo "install.sh: $token is a symbolic link; not touching it" >&2
        exit 1
    fi
    if [[ ! -s $token ]]; then
        # Created 0600 before anything is written to it, in a directory only root may write to.
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token.new" && echo >> "$token.new")
        chmod 600 "$token.new"
        mv -f "$token.new" "$token"
        say "wrote a random bearer token to $token"
    fi
    chown root:root "$token"
    chmod 600 "$token"
    if [[ -d /run/systemd/system ]]; then systemctl daemon-reload; fi
fi
say "installed $version: $prefix/bin/extentdb, man page, bash/zsh/fish completions, $unit_dir/extentdb.service${DESTDIR:+ (under $DESTDIR)}"

#!/usr/bin/env bash
# Makes dist/extentdb_<version>_amd64.deb: the statically linked binary (scripts/install.sh builds it), its
# manual page, bash/zsh/fish completions, the systemd unit and /etc/extentdb/extentdb.conf (a conffile).
# Depends are the runtime libraries the binary links (dpkg-shlibdeps: libc6, libsqlite3-0, zlib1g,
# libzstd1, libstdc++6, libgcc-s1), never the -dev packages. Needs dpkg-dev.
#
#   scripts/package-deb.sh [--binary FILE]     (--binary: package this build instead of building)
#
# On a host: apt install ./dist/extentdb_<version>_amd64.deb
# Its postinst creates the `extentdb` system user, /etc/extentdb (0750 root:extentdb) and a random token
# in /etc/extentdb/token (0600 root) unless one is there; it does not enable or start the service.
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
binary_args=()
while (($# > 0)); do
    case $1 in
        --binary) binary_args=(--binary "${2:?--binary needs a file}"); shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "package-deb.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/root
mkdir -m 755 "$stage"

DESTDIR=$stage "$REPO_DIR/scripts/install.sh" --prefix /usr --unit-dir /lib/systemd/system "${binary_args[@]}"
version=$("$stage/usr/bin/extentdb" --version | awk '{print $NF}')
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || { echo "package-deb.sh: not a Debian version: $version" >&2; exit 1; }

# Debian's layout: the manual page compressed, a copyright file, a stripped binary.
gzip -9n "$stage/usr/share/man/man1/extentdb.1"
install -d -m 755 "$stage/usr/share/doc/extentdb"
cat > "$stage/usr/share/doc/extentdb/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: extentdb

Files: *
Copyright: 2026 extentdb maintainers
License: unspecified
 The project's repository names no license yet.
EOF
chmod 644 "$stage/usr/share/doc/extentdb/copyright"
# /etc/extentdb is 0750 and its configuration 0640 on purpose: the token lives there.
install -d -m 755 "$stage/usr/share/lintian/overrides"
printf '%s\n' 'extentdb: non-standard-dir-perm 0750 != 0755 [etc/extentdb/]' \
    'extentdb: non-standard-file-perm 0640 != 0644 [etc/extentdb/extentdb.conf]' > "$stage/usr/share/lintian/overrides/extentdb"
chmod 644 "$stage/usr/share/lintian/overrides/extentdb"
{ echo "extentdb ($version) unstable; urgency=medium"; echo; echo "  * Packaged by scripts/package-deb.sh."; echo
  echo " -- extentdb maintainers <maintainers@users.noreply.invalid>  $(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git -C "$REPO_DIR" log -1 --format=%ct 2>/dev/null || date +%s)}")"; } \
    | gzip -9n > "$stage/usr/share/doc/extentdb/changelog.gz"
chmod 644 "$stage/usr/share/doc/extentdb/changelog.gz"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/extentdb"

# Depends, from the libraries the binary links.
mkdir -p "$work/shlibs/debian"
printf 'Source: extentdb\n\nPackage: extentdb\nArchitecture: any\n' > "$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O -e"$stage/usr/bin/extentdb" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "package-deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
if grep -q -- '-dev' <<<"$depends"; then echo "package-deb.sh: a -dev package in Depends: $depends" >&2; exit 1; fi

install -d -m 755 "$stage/DEBIAN"
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<EOF
Package: extentdb
Version: $version
Architecture: $arch
Maintainer: extentdb maintainers <maintainers@users.noreply.invalid>
Installed-Size: $installed_size
Depends: $depends, passwd
Section: admin
Priority: optional
Description: allocation index for QCOW2 and VHD disk images
 extentdb walks a VM disk image (QCOW2, VHD, raw) once, stores its allocated
 extents and header metadata in SQLite, and answers from that index: a CLI
 (scan, map, info, export, changes, report) and a service (extentdb serve)
 over HTTP/JSON and NBD for backup agents, with a hardened systemd unit.
EOF
echo /etc/extentdb/extentdb.conf > "$stage/DEBIAN/conffiles"
(cd "$stage" && find usr lib -type f -print0 | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
cat > "$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd extentdb > /dev/null; then
        useradd --system --user-group --home-dir /var/lib/extentdb --no-create-home \
            --shell /usr/sbin/nologin --comment "extentdb allocation index service" extentdb
    fi
    install -d -m 750 -o root -g extentdb /etc/extentdb
    chgrp extentdb /etc/extentdb/extentdb.conf && chmod 640 /etc/extentdb/extentdb.conf
    if [ -L /etc/extentdb/token ]; then
        echo "extentdb: /etc/extentdb/token is a symbolic link; left alone" >&2
    elif [ ! -s /etc/extentdb/token ]; then
        (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > /etc/extentdb/token.new; echo >> /etc/extentdb/token.new)
        mv -f /etc/extentdb/token.new /etc/extentdb/token
    fi
    if [ -f /etc/extentdb/token ] && [ ! -L /etc/extentdb/token ]; then
        chown root:root /etc/extentdb/token && chmod 600 /etc/extentdb/token
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload > /dev/null || true
    fi
fi
exit 0
EOF
cat > "$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    rm -f /etc/extentdb/token /etc/extentdb/token.new
    rmdir /etc/extentdb 2> /dev/null || true
    rm -rf /var/lib/extentdb
fi
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload > /dev/null || true
fi
exit 0
EOF
chmod 755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/postrm"
chmod 644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

mkdir -p "$REPO_DIR/dist"
deb=$REPO_DIR/dist/extentdb_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" > /dev/null
echo "package-deb.sh: $deb"
echo "package-deb.sh: Depends: $depends"

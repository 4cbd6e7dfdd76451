#!/usr/bin/env bash
# Installs panel-player as a system service on Raspberry Pi OS Lite (Bookworm,
# Trixie) or Debian: the service user and folders (systemd-sysusers and
# systemd-tmpfiles), a versioned install in /opt/panel-player (one virtual
# environment per version, from the locked and hashed requirements/panel.txt),
# the systemd units, enabled and started. Safe to run again: a second run
# changes nothing and says so. An install of the earlier layout (one venv in
# /opt/panel-player/venv) is moved to the versioned one.
#
#   sudo scripts/install.sh                      install or update
#   sudo scripts/install.sh --uninstall          remove the services, program and user
#   sudo scripts/install.sh --uninstall --purge  ... and the config and state too
#
# Layout: /opt/panel-player/versions/<version>/venv (installed.json written last
# marks a version complete), and the relative symlinks current (what the
# service runs), good (what the updater runs) and previous (the version before
# current); /usr/local/bin/panel-player and panelctl link through current.
#
# Options:
#   --root DIR     install into the tree DIR instead of / (tests, image building):
#                  systemd-sysusers and systemd-tmpfiles get --root=DIR (where they
#                  are missing, or without root rights, user entries are appended to
#                  DIR/etc/{passwd,group,shadow,gshadow}); apt and systemctl are
#                  skipped. A venv is not relocatable: the paths inside DIR's venvs
#                  are DIR's, so build images by running this script inside the image
#                  (in a chroot the units are enabled, and start at its first boot).
#   --source DIR   the panel-player checkout to install (default: this script's)
#   --no-apt       do not install Debian packages
#   --no-venv      skip the program itself (with --root, for fast tests)
#   --no-enable    do not enable or start the services
# Environment: PANEL_PYTHON (default python3) makes the venv; PANEL_PIP_ARGS adds
# arguments to `pip install` (e.g. "--no-index --find-links DIR" offline);
# PANEL_REQUIREMENTS names the lock to install (default: the source's
# requirements/panel.txt); PANEL_NO_SYSUSERS=1 writes the account entries and
# folders directly even where systemd-sysusers exists (tests of that path);
# PANEL_LGPIO_FILES lists the module files to link where lgpio has no wheel
# (default: those of the installed python3-lgpio package).
set -euo pipefail

NAME=panel-player
SERVICE_USER=panel-player
WANTED_GROUPS=(video gpio spi i2c)
DEBS=(python3 python3-venv python3-pip fonts-dejavu-core)

ROOT=""
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APT=1 VENV=1 ENABLE=1 UNINSTALL=0 PURGE=0

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || die "--root needs a folder"; ROOT="${2%/}"; shift ;;
        --source) [ $# -ge 2 ] || die "--source needs a folder"; SOURCE="$2"; shift ;;
        --no-apt) APT=0 ;;
        --no-venv) VENV=0 ;;
        --no-enable) ENABLE=0 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) PURGE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[ "$PURGE" = 0 ] || [ "$UNINSTALL" = 1 ] || die "--purge goes with --uninstall"
if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root: no such folder $ROOT"
    ROOT="$(cd "$ROOT" && pwd)"
    [ "$ROOT" != "/" ] || ROOT=""
fi
TREE=0
[ -z "$ROOT" ] || TREE=1
IS_ROOT=0
[ "$(id -u)" -ne 0 ] || IS_ROOT=1
[ "$TREE" = 1 ] || [ "$IS_ROOT" = 1 ] || die "run it as root (sudo $0 ...)"

ETC="$ROOT/etc/$NAME"
STATE="$ROOT/var/lib/$NAME"
OPT="$ROOT/opt/$NAME"
VERSIONS="$OPT/versions"
UNITDIR="$ROOT/etc/systemd/system"
UNIT="$UNITDIR/$NAME.service"
DROPIN="$UNITDIR/$NAME.service.d"
SYSUSERS="$ROOT/usr/lib/sysusers.d/$NAME.conf"
TMPFILES="$ROOT/usr/lib/tmpfiles.d/$NAME.conf"
BIN="$ROOT/usr/local/bin"
# systemd-sysusers and systemd-tmpfiles make the user and folders where they exist
# (they need root: they set owners); the hand-written entries below are the fallback.
USE_SYSTEMD_TOOLS=0
if [ "$IS_ROOT" = 1 ] && command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null \
    && [ -z "${PANEL_NO_SYSUSERS:-}" ]; then
    USE_SYSTEMD_TOOLS=1
fi
SD_ROOT=()
[ "$TREE" = 0 ] || SD_ROOT=(--root="$ROOT")

CHANGES=0
say() { printf '==> %s\n' "$*"; }
ok() { printf '    %s\n' "$*"; }
changed() { CHANGES=$((CHANGES + 1)); printf '    %s\n' "$*"; }

# -- accounts ------------------------------------------------------------------
# On the running system useradd/usermod/userdel do the work (locking, nscd). In a
# --root tree the entries are written in the same format, without chroot or root.

field_of() {  # field_of FILE NAME N: field N of the entry NAME
    [ -f "$1" ] && awk -F: -v n="$2" -v f="$3" '$1 == n { print $f; exit }' "$1"
}

group_exists() {
    if [ "$TREE" = 1 ]; then [ -n "$(field_of "$ROOT/etc/group" "$1" 1)" ]; else getent group "$1" >/dev/null; fi
}

user_exists() {
    if [ "$TREE" = 1 ]; then [ -n "$(field_of "$ROOT/etc/passwd" "$1" 1)" ]; else getent passwd "$1" >/dev/null; fi
}

rewrite() {  # rewrite FILE AWK-ARGS...: filter FILE in place, keeping its mode and owner; 0 if it changed
    local file="$1" tmp
    shift
    tmp="$(mktemp)"  # outside the folder: a no-op run leaves even its mtime alone
    awk "$@" "$file" >"$tmp"
    if cmp -s "$tmp" "$file"; then rm -f "$tmp"; return 1; fi
    cat "$tmp" >"$file"
    rm -f "$tmp"
}

login_def() {  # login_def KEY DEFAULT
    local v=""
    [ -f "$ROOT/etc/login.defs" ] && v="$(awk -v k="$1" '$1 == k { print $2 }' "$ROOT/etc/login.defs")"
    echo "${v:-$2}"
}

tree_add_user() {
    local etc="$ROOT/etc" lo hi id
    mkdir -p "$etc"
    for f in passwd group; do [ -f "$etc/$f" ] || install -m 0644 /dev/null "$etc/$f"; done
    for f in shadow gshadow; do [ -f "$etc/$f" ] || install -m 0640 /dev/null "$etc/$f"; done
    lo="$(login_def SYS_UID_MIN 100)" hi="$(login_def SYS_UID_MAX 999)"
    # Like useradd --system: the highest free id of the system range, the same for user and group.
    for ((id = hi; id >= lo; id--)); do
        awk -F: -v i="$id" '$3 == i { found = 1 } END { exit !found }' "$etc/passwd" "$etc/group" || break
    done
    [ "$id" -ge "$lo" ] || die "no free system id between $lo and $hi in $etc/passwd"
    echo "$SERVICE_USER:x:$id:$id:panel-player street panel:/var/lib/$NAME:/usr/sbin/nologin" >>"$etc/passwd"
    echo "$SERVICE_USER:x:$id:" >>"$etc/group"
    echo "$SERVICE_USER:!:$(($(date +%s) / 86400))::::::" >>"$etc/shadow"
    echo "$SERVICE_USER:!::" >>"$etc/gshadow"
}

add_to_group() {  # add_to_group GROUP; 0 if the membership was added
    local grp="$1" added=1 f
    if [ "$TREE" = 0 ]; then
        id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$grp" && return 1
        usermod -a -G "$grp" "$SERVICE_USER"
        return 0
    fi
    for f in "$ROOT/etc/group" "$ROOT/etc/gshadow"; do
        [ -f "$f" ] || continue
        if rewrite "$f" -F: -v OFS=: -v g="$grp" -v u="$SERVICE_USER" '
            $1 == g { n = split($4, m, ","); seen = 0
                      for (i = 1; i <= n; i++) if (m[i] == u) seen = 1
                      if (!seen) $4 = ($4 == "" ? u : $4 "," u) }
            { print }'; then
            added=0
        fi
    done
    return $added
}

step_user_by_hand() {
    if user_exists "$SERVICE_USER"; then
        ok "already present"
    elif [ "$TREE" = 1 ]; then
        tree_add_user
        changed "created (uid $(field_of "$ROOT/etc/passwd" "$SERVICE_USER" 3), entries in $ROOT/etc/passwd, group, shadow, gshadow)"
    else
        useradd --system --user-group --home-dir "/var/lib/$NAME" --no-create-home \
            --shell /usr/sbin/nologin --comment "panel-player street panel" "$SERVICE_USER"
        changed "created (uid $(id -u "$SERVICE_USER"))"
    fi
    local grp missing=()
    for grp in "${WANTED_GROUPS[@]}"; do
        if ! group_exists "$grp"; then
            missing+=("$grp")
        elif add_to_group "$grp"; then
            changed "added to group $grp"
        else
            ok "in group $grp"
        fi
    done
    [ ${#missing[@]} -eq 0 ] || ok "no group ${missing[*]} on this system (skipped)"
    if [ "$TREE" = 1 ]; then
        UID_N="$(field_of "$ROOT/etc/passwd" "$SERVICE_USER" 3)"
        GID_N="$(field_of "$ROOT/etc/passwd" "$SERVICE_USER" 4)"
    else
        UID_N="$(id -u "$SERVICE_USER")" GID_N="$(id -g "$SERVICE_USER")"
    fi
}

step_remove_user() {
    say "system user $SERVICE_USER"
    if ! user_exists "$SERVICE_USER"; then
        ok "already removed"
    elif [ "$TREE" = 0 ]; then
        userdel "$SERVICE_USER"
        ! getent group "$SERVICE_USER" >/dev/null || groupdel "$SERVICE_USER"
        changed "removed"
    else
        local f
        for f in passwd shadow; do
            [ -f "$ROOT/etc/$f" ] && rewrite "$ROOT/etc/$f" -F: -v u="$SERVICE_USER" '$1 != u' || true
        done
        for f in group gshadow; do
            [ -f "$ROOT/etc/$f" ] || continue
            rewrite "$ROOT/etc/$f" -F: -v OFS=: -v u="$SERVICE_USER" '
                $1 == u { next }
                { n = split($4, m, ","); out = ""
                  for (i = 1; i <= n; i++) if (m[i] != u) out = (out == "" ? m[i] : out "," m[i])
                  if (out != $4) $4 = out
                  print }' || true
        done
        changed "removed from $ROOT/etc/passwd, group, shadow, gshadow"
    fi
}

# -- files ---------------------------------------------------------------------

ensure_dir() {  # ensure_dir PATH MODE UID GID
    local path="$1" mode="$2" uid="$3" gid="$4"
    if [ ! -d "$path" ]; then
        mkdir -p "$path"
        chmod "$mode" "$path"
        [ "$IS_ROOT" = 0 ] || chown "$uid:$gid" "$path"
        changed "created $path (mode $mode)"
        return
    fi
    local fixed=0
    if [ "$(stat -c %a "$path")" != "${mode#0}" ]; then
        chmod "$mode" "$path"
        changed "set mode $mode on $path"
        fixed=1
    fi
    if [ "$IS_ROOT" = 1 ] && [ "$(stat -c %u:%g "$path")" != "$uid:$gid" ]; then
        chown "$uid:$gid" "$path"
        changed "set owner of $path to $uid:$gid"
        fixed=1
    fi
    [ "$fixed" = 1 ] || ok "$path ok"
}

put_file() {  # put_file SRC DST MODE: copy when different; 0 if it changed
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        [ "$(stat -c %a "$2")" = "${3#0}" ] || { chmod "$3" "$2"; return 0; }
        return 1
    fi
    mkdir -p "$(dirname "$2")"
    install -m "$3" "$1" "$2"
}

accounts_sum() {  # a hash of the account files, to tell whether a tool changed them
    cat "$ROOT/etc/passwd" "$ROOT/etc/group" "$ROOT/etc/shadow" "$ROOT/etc/gshadow" 2>/dev/null | sha256sum
}

in_group() {  # in_group USER GROUP: USER is a member of GROUP
    if [ "$TREE" = 1 ]; then
        awk -F: -v g="$2" -v u="$1" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) f = 1 }
            END { exit !f }' "$ROOT/etc/group"
    else
        id -nG "$1" 2>/dev/null | tr ' ' '\n' | grep -qx "$2"
    fi
}

sysusers_satisfied() {  # sysusers_satisfied CONF: its u, g and m lines are all in place already
    # (systemd-sysusers itself would find nothing to do, but it still takes its lock in /etc).
    local kind name rest
    while read -r kind name rest; do
        case "$kind" in
            u) user_exists "$name" || return 1 ;;
            g) group_exists "$name" || return 1 ;;
            m) in_group "$name" "${rest%% *}" || return 1 ;;
        esac
    done < <(grep -v '^[[:space:]]*\(#\|$\)' "$1")
}

step_user() {
    say "system user $SERVICE_USER"
    local conf="$SOURCE/systemd/$NAME.sysusers" before out
    if [ "$USE_SYSTEMD_TOOLS" = 1 ] && [ -f "$conf" ]; then
        if put_file "$conf" "$SYSUSERS" 0644; then changed "installed ${SYSUSERS#"$ROOT"}"; fi
        if sysusers_satisfied "$SYSUSERS"; then
            ok "already present (every entry of ${SYSUSERS#"$ROOT"} is there)"
            set_ids
            return
        fi
        before="$(accounts_sum)"
        out="$(systemd-sysusers "${SD_ROOT[@]}" "$SYSUSERS" 2>&1)" || die "systemd-sysusers failed: $out"
        if [ "$(accounts_sum)" != "$before" ]; then
            changed "systemd-sysusers: ${out//$'\n'/; }"
        else
            ok "already present (systemd-sysusers: nothing to do)"
        fi
    else
        [ "$USE_SYSTEMD_TOOLS" = 1 ] || ok "no systemd-sysusers here (or not root): entries written directly"
        step_user_by_hand
    fi
    set_ids
}

set_ids() {
    if [ "$TREE" = 1 ]; then
        UID_N="$(field_of "$ROOT/etc/passwd" "$SERVICE_USER" 3)"
        GID_N="$(field_of "$ROOT/etc/passwd" "$SERVICE_USER" 4)"
    else
        UID_N="$(id -u "$SERVICE_USER")" GID_N="$(id -g "$SERVICE_USER")"
    fi
}

dirs_state() {  # mode and owner of the folders tmpfiles.d makes
    stat -c '%n %a %u %g' "$ETC" "$STATE" 2>/dev/null || true
}

step_dirs() {
    say "folders"
    local conf="$SOURCE/systemd/$NAME.tmpfiles" before out
    if [ "$USE_SYSTEMD_TOOLS" = 1 ] && [ -f "$conf" ]; then
        if put_file "$conf" "$TMPFILES" 0644; then changed "installed ${TMPFILES#"$ROOT"}"; fi
        before="$(dirs_state)"
        out="$(systemd-tmpfiles --create "${SD_ROOT[@]}" "$TMPFILES" 2>&1)" || die "systemd-tmpfiles failed: $out"
        if [ "$(dirs_state)" != "$before" ]; then
            changed "systemd-tmpfiles: $ETC and $STATE made or repaired"
        else
            ok "$ETC and $STATE ok (systemd-tmpfiles: nothing to do)"
        fi
    else
        ensure_dir "$ETC" 0750 0 "$GID_N"
        ensure_dir "$STATE" 0750 "$UID_N" "$GID_N"
    fi
    ensure_dir "$OPT" 0755 0 0
    ensure_dir "$VERSIONS" 0755 0 0
}

# -- the program: one folder per version ---------------------------------------

source_version() {
    sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' "$SOURCE/player/__init__.py"
}

source_stamp() {  # a hash of what the version folder is made from: the source and the lock
    local items=() i
    for i in pyproject.toml setup.py setup.cfg README.md LICENSE player layouts content docs; do
        [ -e "$SOURCE/$i" ] && items+=("$i")
    done
    {
        (cd "$SOURCE" && find "${items[@]}" -name __pycache__ -prune -o -type f -print0 | LC_ALL=C sort -z \
            | xargs -0 sha256sum)
        sha256sum <"$LOCK"
        echo "${PANEL_PIP_ARGS:-}"
    } | sha256sum | cut -d' ' -f1
}

linked_version() {  # linked_version NAME: the version a symlink in $OPT points at, or nothing
    local target
    target="$(readlink "$OPT/$1" 2>/dev/null)" || return 0
    case "$target" in versions/*) echo "${target#versions/}" ;; esac
}

switch_link() {  # switch_link NAME VERSION: point $OPT/NAME at versions/VERSION, atomically
    local name="$1" version="$2" tmp
    [ "$(readlink "$OPT/$name" 2>/dev/null)" = "versions/$version" ] && return 1
    tmp="$OPT/.$name.tmp.$$"
    rm -f "$tmp"
    ln -s "versions/$version" "$tmp"
    mv -T "$tmp" "$OPT/$name"
}

write_installed_json() {  # write_installed_json DIR VERSION: fsynced, renamed into place, last
    local dir="$1" tmp="$1/.installed.json.tmp"
    printf '{"version": "%s", "installed": "%s", "by": "install.sh"}\n' \
        "$2" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$tmp"
    sync "$tmp"
    mv -T "$tmp" "$dir/installed.json"
    sync "$dir"
}

pip_in() {  # pip_in VENV ARGS...: pip of that venv, PyPI's hashes (no local pip.conf index)
    local venv="$1"
    shift
    # shellcheck disable=SC2086  # PANEL_PIP_ARGS is a list of words on purpose
    PIP_CONFIG_FILE=/dev/null "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        ${PANEL_PIP_ARGS:-} "$@"
}

system_lgpio_files() {  # the module files of Debian's python3-lgpio for this Python, if installed
    if [ -n "${PANEL_LGPIO_FILES:-}" ]; then printf '%s\n' $PANEL_LGPIO_FILES; return; fi
    dpkg-query -L python3-lgpio 2>/dev/null | grep -E '/dist-packages/(lgpio\.py|_lgpio\.cpython-[0-9]+-[^/]*\.so)$' || true
}

lgpio_imports() {  # lgpio_imports VENV: 0 if lgpio imports there
    # lgpio makes a notification pipe in its working folder (LG_WD) when imported: a private one.
    local wd rc=0
    wd="$(mktemp -d)"
    LG_WD="$wd" "$1/bin/python" -c 'import lgpio' >/dev/null 2>&1 || rc=1
    rm -rf "$wd"
    return $rc
}

venv_lgpio() {  # venv_lgpio VENV: make sure lgpio imports in VENV (gpiozero's pin factory for panels)
    local venv="$1" site files=() f
    if lgpio_imports "$venv"; then
        ok "lgpio: from the lock"
        return
    fi
    # No wheel on PyPI for this Python (3.13 and later): Raspberry Pi OS's python3-lgpio,
    # built for the system's Python, is linked into the venv (its module only: the venv
    # sees nothing else of the system's packages).
    if [ -z "${PANEL_LGPIO_FILES:-}" ] && ! dpkg-query -W -f='${Status}' python3-lgpio 2>/dev/null | grep -q "install ok installed"; then
        if [ "$TREE" = 0 ] && [ "$APT" = 1 ] && apt-cache show python3-lgpio >/dev/null 2>&1; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-lgpio >/dev/null
            changed "installed python3-lgpio (no lgpio wheel on PyPI for $("$venv/bin/python" --version 2>&1))"
        fi
    fi
    mapfile -t files < <(system_lgpio_files)
    if [ ${#files[@]} -eq 0 ]; then
        ok "lgpio: no wheel for $("$venv/bin/python" --version 2>&1) and no python3-lgpio package here:"
        ok "gpiozero falls back to another pin factory (see docs/install.md, 'GPIO back-end')"
        return
    fi
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    for f in "${files[@]}"; do ln -sfn "$f" "$site/$(basename "$f")"; done
    if lgpio_imports "$venv"; then
        changed "lgpio: linked from python3-lgpio (${files[*]})"
    else
        ok "lgpio: python3-lgpio's module does not load in this venv (see docs/install.md, 'GPIO back-end')"
    fi
}

step_version() {
    VERSION="$(source_version)"
    [ -n "$VERSION" ] || die "no __version__ in $SOURCE/player/__init__.py"
    local dir="$VERSIONS/$VERSION" venv="$VERSIONS/$VERSION/venv" want stage doc
    say "panel-player $VERSION in $dir"
    if [ "$VENV" = 0 ]; then ok "skipped (--no-venv)"; return; fi
    local python="${PANEL_PYTHON:-python3}"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || die "$python is missing or older than 3.11 (panel-player needs Python 3.11 or later)"
    [ -f "$LOCK" ] || die "no lock file $LOCK"
    want="$(source_stamp)"
    if [ -f "$dir/installed.json" ] && [ "$(cat "$dir/.source" 2>/dev/null)" = "$want" ]; then
        ok "up to date with $SOURCE"
        return
    fi
    if [ -e "$dir" ]; then
        # An unfinished folder (no installed.json), or this version built from another
        # source: made again in place (a venv cannot be moved). Never the case for a
        # released version, whose number changes with its content.
        if [ "$TREE" = 0 ] && [ "$(linked_version current)" = "$VERSION" ] \
            && systemctl is-active --quiet "$NAME" 2>/dev/null; then
            systemctl stop "$NAME"
            ok "stopped the service to rebuild the version it runs"
        fi
        rm -rf "$dir"
    fi
    mkdir -p "$dir"
    "$python" -m venv "$venv"
    changed "created the venv with $("$python" --version 2>&1)"
    if ! pip_in "$venv" --require-hashes -r "$LOCK"; then
        die "pip could not install the locked packages of $LOCK into $venv (see above)"
    fi
    # The project itself: built from a copy (the checkout gets no build/ or egg-info),
    # with the lock's setuptools (no build isolation) and nothing resolved (--no-deps).
    stage="$(mktemp -d)"
    tar -C "$SOURCE" --exclude=.git --exclude=.venv --exclude=build --exclude=dist --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis -cf - . | tar -C "$stage" -xf -
    if ! pip_in "$venv" --no-deps --no-build-isolation "$stage"; then
        rm -rf "$stage"
        die "pip could not install panel-player into $venv (see above)"
    fi
    rm -rf "$stage"
    "$venv/bin/panel-player" --version >/dev/null || die "$venv/bin/panel-player does not run"
    venv_lgpio "$venv"
    mkdir -p "$dir/docs"
    for doc in "$SOURCE"/docs/*.md; do
        [ -f "$doc" ] && install -m 0644 "$doc" "$dir/docs/$(basename "$doc")"
    done
    echo "$want" >"$dir/.source"
    sync -f "$dir"  # everything written so far is on the disk before installed.json says so
    write_installed_json "$dir" "$VERSION"
    changed "installed panel-player $VERSION from $SOURCE (locked packages of ${LOCK#"$SOURCE/"})"
    VENV_CHANGED=1
}

step_links() {
    say "current, good and previous in $OPT"
    if [ "$VENV" = 0 ] || [ ! -f "$VERSIONS/$VERSION/installed.json" ]; then ok "skipped (no version installed)"; return; fi
    local old
    old="$(linked_version current)"
    if [ -n "$old" ] && [ "$old" != "$VERSION" ] && [ -f "$VERSIONS/$old/installed.json" ]; then
        switch_link previous "$old" && changed "previous -> versions/$old"
    fi
    if switch_link current "$VERSION"; then changed "current -> versions/$VERSION"; else ok "current -> versions/$VERSION"; fi
    # The version an operator installed by hand is the one the updater runs from.
    if switch_link good "$VERSION"; then changed "good -> versions/$VERSION"; else ok "good -> versions/$VERSION"; fi
    sync "$OPT"
}

step_migrate() {  # the layout before versions/: one venv and the docs directly in $OPT
    [ -d "$OPT/venv" ] || [ -d "$OPT/docs" ] || return 0
    say "earlier layout ($OPT/venv)"
    if [ ! -L "$OPT/current" ]; then
        ok "kept until a version is installed (--no-venv)"
        return
    fi
    rm -rf "$OPT/venv" "$OPT/docs"
    changed "removed $OPT/venv and $OPT/docs (now $OPT/current/venv and $OPT/current/docs)"
}

step_prune() {
    say "older versions"
    local keep=() v d n=0
    for v in current good previous; do keep+=("$(linked_version "$v")"); done
    for d in "$VERSIONS"/*; do
        [ -d "$d" ] || continue
        v="$(basename "$d")"
        [ "$v" != "${VERSION:-}" ] || continue
        case " ${keep[*]} " in *" $v "*) continue ;; esac
        rm -rf "$d"
        n=$((n + 1))
        changed "removed versions/$v"
    done
    [ "$n" -gt 0 ] || ok "none"
}

step_commands() {
    say "commands in $BIN"
    if [ ! -x "$OPT/current/venv/bin/panel-player" ]; then ok "skipped (no version installed)"; return; fi
    local cmd
    mkdir -p "$BIN"
    for cmd in panel-player panelctl; do
        if [ "$(readlink "$BIN/$cmd" 2>/dev/null)" = "/opt/$NAME/current/venv/bin/$cmd" ]; then
            ok "$cmd ok"
        else
            ln -sfn "/opt/$NAME/current/venv/bin/$cmd" "$BIN/$cmd"
            changed "linked $cmd -> /opt/$NAME/current/venv/bin/$cmd"
        fi
    done
}

unit_files() {  # the unit files the source ships
    local f
    for f in "$SOURCE"/systemd/*.service "$SOURCE"/systemd/*.path; do
        [ -f "$f" ] && echo "$f"
    done
}

step_unit() {
    say "systemd units in ${UNITDIR#"$ROOT"}"
    local src="$SOURCE/systemd/$NAME.service" grp present=() absent=() wanted f
    [ -f "$src" ] || die "no unit in the source: $src"
    while read -r f; do
        if put_file "$f" "$UNITDIR/$(basename "$f")" 0644; then
            changed "installed $(basename "$f")"
            UNIT_CHANGED=1
        else
            ok "$(basename "$f") unchanged"
        fi
    done < <(unit_files)
    # systemd refuses to start a unit whose SupplementaryGroups= names a group that
    # does not exist. systemd-sysusers makes them; without it, list only those there are.
    wanted="$(sed -n 's/^SupplementaryGroups=//p' "$src" | tail -n 1)"
    for grp in $wanted; do
        if group_exists "$grp"; then present+=("$grp"); else absent+=("$grp"); fi
    done
    if [ ${#absent[@]} -eq 0 ]; then
        if [ -f "$DROPIN/groups.conf" ]; then
            rm -f "$DROPIN/groups.conf"
            rmdir "$DROPIN" 2>/dev/null || true
            changed "removed the groups drop-in (every group exists now)"
            UNIT_CHANGED=1
        fi
        return
    fi
    local tmp
    tmp="$(mktemp)"
    {
        echo "# Written by scripts/install.sh: this system has no group ${absent[*]}."
        echo "# Run the installer again after adding them."
        echo "[Service]"
        echo "SupplementaryGroups="
        [ ${#present[@]} -eq 0 ] || echo "SupplementaryGroups=${present[*]}"
    } >"$tmp"
    if put_file "$tmp" "$DROPIN/groups.conf" 0644; then
        changed "drop-in $DROPIN/groups.conf: without the missing group(s) ${absent[*]}"
        UNIT_CHANGED=1
    fi
    rm -f "$tmp"
}

have_config() {
    [ -f "$ETC/config.yaml" ] || [ -f "$ROOT/boot/firmware/panel-player.yaml" ] || [ -f "$ROOT/boot/panel-player.yaml" ]
}

step_service() {
    say "services"
    if [ "$TREE" = 1 ]; then ok "skipped (--root: enable them on the target system)"; return; fi
    if [ "$ENABLE" = 0 ]; then ok "skipped (--no-enable)"; return; fi
    local running=1 f unit
    # In a chroot (an image being built) systemd is not running: units are enabled, not started.
    [ -d /run/systemd/system ] || running=0
    [ "$UNIT_CHANGED" = 0 ] || [ "$running" = 0 ] || { systemctl daemon-reload; ok "systemd reloaded"; }
    while read -r f; do
        unit="$(basename "$f")"
        grep -q '^\[Install\]' "$f" || continue
        if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
            ok "$unit enabled"
        else
            systemctl enable -q "$unit"
            changed "$unit enabled"
        fi
        [ "$running" = 1 ] || continue
        case "$unit" in
            *.path) systemctl is-active --quiet "$unit" || { systemctl start "$unit"; changed "$unit started"; } ;;
        esac
    done < <(unit_files)
    if [ "$running" = 0 ]; then
        ok "systemd is not running here (a chroot?): the services start at the next boot"
    elif ! have_config; then
        ok "not started: no config yet. Write one with 'sudo panel-player provision --id ...'"
        ok "or put panel-player.yaml on the boot partition, then: sudo systemctl start $NAME"
    elif ! systemctl is-active --quiet "$NAME"; then
        systemctl start "$NAME"
        changed "started"
    elif [ "$UNIT_CHANGED" = 1 ] || [ "$VENV_CHANGED" = 1 ]; then
        systemctl restart "$NAME"
        changed "restarted with the new version"
    else
        ok "running"
    fi
}

# -- uninstall -----------------------------------------------------------------

remove_path() {  # remove_path PATH WHAT
    if [ -e "$1" ] || [ -L "$1" ]; then rm -rf "$1"; changed "removed $2 $1"; else ok "$2 already removed"; fi
}

installed_units() {  # our unit files installed on the target
    local f
    for f in "$UNITDIR/$NAME.service" "$UNITDIR/$NAME"-*.service "$UNITDIR/$NAME"-*.path; do
        [ -f "$f" ] && echo "$f"
    done
}

uninstall() {
    say "services"
    local f unit n=0
    if [ "$TREE" = 0 ]; then
        while read -r f; do
            unit="$(basename "$f")"
            systemctl disable -q --now "$unit" 2>/dev/null || true
            n=$((n + 1))
        done < <(installed_units)
    fi
    if [ "$n" -gt 0 ]; then changed "stopped and disabled $n unit(s)"; else ok "nothing to stop"; fi
    say "systemd units"
    local units=()
    mapfile -t units < <(installed_units)
    if [ ${#units[@]} -eq 0 ]; then ok "units already removed"; fi
    for f in "${units[@]}"; do remove_path "$f" "unit"; done
    remove_path "$DROPIN" "drop-ins"
    remove_path "$SYSUSERS" "sysusers.d entry"
    remove_path "$TMPFILES" "tmpfiles.d entry"
    [ "$TREE" = 1 ] || [ ! -d /run/systemd/system ] || systemctl daemon-reload
    say "program"
    local cmd
    for cmd in panel-player panelctl; do
        case "$(readlink "$BIN/$cmd" 2>/dev/null)" in
            "/opt/$NAME/current/venv/bin/$cmd" | "/opt/$NAME/venv/bin/$cmd") remove_path "$BIN/$cmd" "command" ;;
        esac
    done
    remove_path "$OPT" "program folder"
    step_remove_user
    say "config and state"
    if [ "$PURGE" = 1 ]; then
        remove_path "$ETC" "config"
        remove_path "$STATE" "state"
    else
        ok "kept $ETC and $STATE (--purge removes them)"
    fi
}

# -- main ----------------------------------------------------------------------

UNIT_CHANGED=0 VENV_CHANGED=0 UID_N=0 GID_N=0 VERSION=""
LOCK="${PANEL_REQUIREMENTS:-$SOURCE/requirements/panel.txt}"
[ "$TREE" = 0 ] || say "installing into the tree $ROOT"
if [ "$UNINSTALL" = 1 ]; then
    uninstall
    if [ "$CHANGES" = 0 ]; then say "nothing to do: panel-player is not installed"; else say "panel-player removed"; fi
    exit 0
fi

[ -f "$SOURCE/pyproject.toml" ] && [ -d "$SOURCE/player" ] || die "--source: $SOURCE is not a panel-player checkout"
say "Debian packages"
if [ "$APT" = 0 ]; then
    ok "skipped (--no-apt)"
elif [ "$TREE" = 1 ]; then
    ok "skipped (--root)"
else
    missing=()
    for pkg in "${DEBS[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        ok "all present"
    else
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        changed "installed ${missing[*]}"
    fi
fi
step_user
step_dirs
step_version
step_links
step_prune
step_commands
step_unit
step_service
step_migrate  # last: the service ran from the earlier venv until step_service restarted it
if [ "$CHANGES" = 0 ]; then
    say "nothing to do: panel-player is already installed and up to date"
else
    say "done ($CHANGES change(s))"
fi
if [ ! -f "$ETC/config.yaml" ]; then
    echo "Next: write the config with 'sudo panel-player provision --id PANEL-ID ...' (docs/install.md)"
fi

#!/usr/bin/env bash
# Installs panel-player as a system service on Raspberry Pi OS Lite (Bookworm,
# Trixie) or Debian: a system user, a virtual environment in /opt/panel-player
# with the package from this checkout, /etc/panel-player, /var/lib/panel-player,
# the systemd unit, enabled and started. Safe to run again: a second run changes
# nothing and says so.
#
#   sudo scripts/install.sh                      install or update
#   sudo scripts/install.sh --uninstall          remove the service, venv and user
#   sudo scripts/install.sh --uninstall --purge  ... and the config and state too
#
# Options:
#   --root DIR     install into the tree DIR instead of / (tests, image building):
#                  user entries are appended to DIR/etc/{passwd,group,shadow,gshadow};
#                  apt and systemctl are skipped. A venv is not relocatable: build
#                  images by running this script inside the image instead.
#   --source DIR   the panel-player checkout to install (default: this script's)
#   --no-apt       do not install Debian packages
#   --no-venv      skip the virtual environment (with --root, for fast tests)
#   --no-enable    do not enable or start the service
# Environment: PANEL_PYTHON (default python3) makes the venv; PANEL_PIP_ARGS adds
# arguments to `pip install` (e.g. "--no-index --find-links DIR" offline).
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
UNIT="$ROOT/etc/systemd/system/$NAME.service"
DROPIN="$ROOT/etc/systemd/system/$NAME.service.d"
BIN="$ROOT/usr/local/bin"

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

step_user() {
    say "system user $SERVICE_USER"
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

step_dirs() {
    say "folders"
    ensure_dir "$ETC" 0750 0 "$GID_N"
    ensure_dir "$STATE" 0750 "$UID_N" "$GID_N"
    ensure_dir "$OPT" 0755 0 0
}

source_stamp() {  # version and hash of what `pip install SOURCE` would install
    local items=() i
    for i in setup.py setup.cfg pyproject.toml README.md player layouts content; do
        [ -e "$SOURCE/$i" ] && items+=("$i")
    done
    (cd "$SOURCE" && find "${items[@]}" -name __pycache__ -prune -o -type f -print0 | LC_ALL=C sort -z \
        | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

step_venv() {
    say "virtual environment $OPT/venv"
    if [ "$VENV" = 0 ]; then ok "skipped (--no-venv)"; return; fi
    local python="${PANEL_PYTHON:-python3}" venv="$OPT/venv" stamp want stage
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || die "$python is missing or older than 3.11 (panel-player needs Python 3.11 or later)"
    want="$(source_stamp)"
    stamp="$venv/.panel-player-source"
    if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        ok "up to date with $SOURCE"
        return
    fi
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv"
        changed "created with $("$python" --version 2>&1)"
    fi
    # Build from a copy so the checkout gets no build/ or egg-info folders.
    stage="$(mktemp -d)"
    tar -C "$SOURCE" --exclude=.git --exclude=.venv --exclude=build --exclude=dist --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis -cf - . | tar -C "$stage" -xf -
    "$venv/bin/python" -m pip uninstall -q -y "$NAME" >/dev/null 2>&1 || true
    # shellcheck disable=SC2086  # PANEL_PIP_ARGS is a list of words on purpose
    if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check ${PANEL_PIP_ARGS:-} "$stage"; then
        rm -rf "$stage"
        die "pip could not install panel-player into $venv (see above)"
    fi
    rm -rf "$stage"
    echo "$want" >"$stamp"
    changed "installed panel-player $("$venv/bin/python" -c 'import player; print(player.__version__)') from $SOURCE"
    VENV_CHANGED=1
}

step_commands() {
    say "commands in $BIN"
    if [ ! -x "$OPT/venv/bin/panel-player" ]; then ok "skipped (no venv)"; return; fi
    local cmd
    mkdir -p "$BIN"
    for cmd in panel-player panelctl; do
        if [ "$(readlink "$BIN/$cmd" 2>/dev/null)" = "/opt/$NAME/venv/bin/$cmd" ]; then
            ok "$cmd ok"
        else
            ln -sfn "/opt/$NAME/venv/bin/$cmd" "$BIN/$cmd"
            changed "linked $cmd"
        fi
    done
}

step_unit() {
    say "systemd unit $UNIT"
    local src="$SOURCE/systemd/$NAME.service" grp present=() absent=() wanted
    [ -f "$src" ] || die "no unit in the source: $src"
    if put_file "$src" "$UNIT" 0644; then changed "installed"; UNIT_CHANGED=1; else ok "unchanged"; fi
    # systemd refuses to start a unit whose SupplementaryGroups= names a group that
    # does not exist (gpio, spi, i2c are Raspberry Pi OS groups): list only ours.
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

step_docs() {
    say "installer and operations docs in $OPT/docs"
    local doc n=0
    for doc in "$SOURCE"/docs/*.md; do
        [ -f "$doc" ] || continue
        if put_file "$doc" "$OPT/docs/$(basename "$doc")" 0644; then n=$((n + 1)); fi
    done
    if [ "$n" -gt 0 ]; then changed "$n file(s) updated"; else ok "unchanged"; fi
}

have_config() {
    [ -f "$ETC/config.yaml" ] || [ -f "$ROOT/boot/firmware/panel-player.yaml" ] || [ -f "$ROOT/boot/panel-player.yaml" ]
}

step_service() {
    say "service"
    if [ "$TREE" = 1 ]; then ok "skipped (--root: enable it on the target system)"; return; fi
    if [ "$ENABLE" = 0 ]; then ok "skipped (--no-enable)"; return; fi
    [ "$UNIT_CHANGED" = 0 ] || { systemctl daemon-reload; ok "systemd reloaded"; }
    if systemctl is-enabled --quiet "$NAME"; then ok "enabled"; else systemctl enable -q "$NAME"; changed "enabled"; fi
    if ! have_config; then
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

uninstall() {
    say "service"
    if [ "$TREE" = 0 ] && [ -f "$UNIT" ]; then
        systemctl disable -q --now "$NAME" 2>/dev/null || true
        changed "stopped and disabled"
    else
        ok "nothing to stop"
    fi
    say "systemd unit"
    remove_path "$UNIT" "unit"
    remove_path "$DROPIN" "drop-ins"
    [ "$TREE" = 1 ] || systemctl daemon-reload
    say "program"
    local cmd
    for cmd in panel-player panelctl; do
        if [ "$(readlink "$BIN/$cmd" 2>/dev/null)" = "/opt/$NAME/venv/bin/$cmd" ]; then
            remove_path "$BIN/$cmd" "command"
        fi
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

UNIT_CHANGED=0 VENV_CHANGED=0 UID_N=0 GID_N=0
[ "$TREE" = 0 ] || say "installing into the tree $ROOT"
if [ "$UNINSTALL" = 1 ]; then
    uninstall
    if [ "$CHANGES" = 0 ]; then say "nothing to do: panel-player is not installed"; else say "panel-player removed"; fi
    exit 0
fi

[ -f "$SOURCE/setup.py" ] && [ -d "$SOURCE/player" ] || die "--source: $SOURCE is not a panel-player checkout"
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
step_venv
step_commands
step_unit
step_docs
step_service
if [ "$CHANGES" = 0 ]; then
    say "nothing to do: panel-player is already installed and up to date"
else
    say "done ($CHANGES change(s))"
fi
if [ ! -f "$ETC/config.yaml" ]; then
    echo "Next: write the config with 'sudo panel-player provision --id PANEL-ID ...' (docs/install.md)"
fi

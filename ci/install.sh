#!/usr/bin/env bash
# Installs this project's tcpconns.so for the distribution's collectd, and
# removes it again.
#
#   ci/install.sh [install] [options]   build (release) and install
#   ci/install.sh uninstall [options]   remove exactly what install created
#
# Two layouts:
#
# In place of the C plugin (the default; needs dpkg-divert, i.e. a
# Debian-family host). The same as the Debian package does: collectd's
# PLUGINDIR/tcpconns.so (the C plugin of collectd-core) is diverted to
# PLUGINDIR/tcpconns.so.distrib with `dpkg-divert --local --rename`, and ours
# is installed as PLUGINDIR/tcpconns.so, so every configuration that says
# `LoadPlugin tcpconns` loads ours, unchanged; upgrades of collectd-core
# unpack the C plugin to the diverted name. Uninstall removes ours and the
# diversion, which moves the C plugin back. A running collectd is restarted
# (systemctl try-restart) on install and uninstall where systemd runs.
#   PLUGINDIR/tcpconns.so      the release build of this crate
#   CONFDIR/tcpconns.conf      packaging/tcpconns.conf: a commented example
#                              only, so no configuration changes
#
# Side by side (--side-by-side), for trying ours next to the C plugin: no
# file of the distribution changes, and only configurations that include
# the snippet load ours.
#   PREFIX/tcpconns.so         the release build of this crate
#   PREFIX/load.conf           PluginDir PREFIX / LoadPlugin tcpconns /
#                              PluginDir <collectd's own plugin directory>
#   CONFDIR/tcpconns.conf      the snippet (collectd.d/tcpconns.conf), its
#                              `LoadPlugin tcpconns` turned into an Include
#                              of load.conf, then the <Plugin tcpconns> block
#   CONFIG                     only if it does not exist (collectd-core alone
#                              ships none): a minimal main config that reads
#                              CONFDIR/*.conf; --no-main-config skips it
#
# Both record what they created (and any directory on those paths that did
# not exist), with checksums, in PREFIX/install-manifest.
#
# Options (defaults come from `collectd -h`, nothing about the host is assumed):
#   --side-by-side     the second layout
#   --prefix DIR       where the manifest goes, and with --side-by-side
#                      tcpconns.so and load.conf
#                      (default /usr/local/lib/collectd-tcpconns)
#   --config FILE      collectd's main config (default: "Config file" of collectd -h)
#   --confdir DIR      where the snippet goes (default: the directory CONFIG
#                      includes, else <dir of CONFIG>/collectd.conf.d)
#   --snippet FILE     snippet(s) to install instead of the default one
#                      (repeatable; a bare name is looked up in collectd.d/)
#   --no-main-config   never create CONFIG (--side-by-side)
#   --no-build         install target/release/libtcpconns.so as it is
#   --force            uninstall: also remove files changed since install
#
# Environment: COLLECTD (default: collectd on PATH, else /usr/sbin/collectd).
#
# It never modifies or removes a file it did not create, except the C plugin
# it diverts: install stops before changing anything if one of its targets
# exists and is not in the manifest; uninstall removes only what the manifest
# lists and keeps (and reports) files changed since install unless --force.
# Installing again over an install updates tcpconns.so (and load.conf), and
# the snippets you have not edited.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
default_prefix=/usr/local/lib/collectd-tcpconns

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

action=install
case "${1:-}" in
  install|uninstall) action=$1; shift ;;
esac
prefix=$default_prefix
config=""
confdir=""
snippets=()
layout=divert
main_config=yes
build=yes
force=no
while [ $# -gt 0 ]; do
  case "$1" in
    --side-by-side) layout=side-by-side; shift ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --config) config=${2:?--config needs a file}; shift 2 ;;
    --confdir) confdir=${2:?--confdir needs a directory}; shift 2 ;;
    --snippet) snippets+=("${2:?--snippet needs a file}"); shift 2 ;;
    --no-main-config) main_config=no; shift ;;
    --no-build) build=no; shift ;;
    --force) force=yes; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument \"$1\" (see --help)" ;;
  esac
done
case "$prefix" in /*) ;; *) die "--prefix must be an absolute path" ;; esac
prefix=${prefix%/}
manifest=$prefix/install-manifest

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Restarts a collectd that systemd runs, so that it maps the tcpconns.so
# now in place (the divert layout changes what `LoadPlugin tcpconns` loads).
restart_collectd() {
  if [ -d /run/systemd/system ] && systemctl -q is-active collectd.service 2>/dev/null; then
    systemctl try-restart collectd.service && say "restarted collectd.service"
  fi
}

# ---------------------------------------------------------------------------
# uninstall
# ---------------------------------------------------------------------------
if [ "$action" = uninstall ]; then
  if [ ! -f "$manifest" ]; then
    say "nothing to uninstall: no $manifest"
    exit 0
  fi
  files=() sums=() dirs=() diverted=() diverted_to=()
  while IFS=$'\t' read -r kind sum path; do
    case "$kind" in
      f) files+=("$path"); sums+=("$sum") ;;
      d) dirs+=("$path") ;;
      v) diverted+=("$path"); diverted_to+=("$sum") ;;
      '#'*|'') ;;
      *) die "$manifest: bad line \"$kind\"" ;;
    esac
  done < "$manifest"
  kept_files=() kept_sums=()
  for ((i = ${#files[@]} - 1; i >= 0; i--)); do
    f=${files[i]}
    if [ ! -e "$f" ] && [ ! -L "$f" ]; then
      say "already gone: $f"
    elif [ "$force" = yes ] || { [ -f "$f" ] && [ ! -L "$f" ] && [ "$(sha "$f")" = "${sums[i]}" ]; }; then
      rm -f -- "$f"
      say "removed $f"
    else
      say "kept $f: changed since install (remove it yourself, or run uninstall --force)"
      kept_files+=("$f")
      kept_sums+=("${sums[i]}")
    fi
  done
  kept_diverted=() kept_divert_to=()
  for i in "${!diverted[@]}"; do
    p=${diverted[i]} to=${diverted_to[i]}
    if [ -e "$p" ] || [ -L "$p" ]; then
      say "kept the diversion of $p to $to: $p is still there"
      kept_diverted+=("$p"); kept_divert_to+=("$to")
    else
      dpkg-divert --local --rename --divert "$to" --remove "$p" >/dev/null ||
        die "dpkg-divert --remove $p failed"
      say "removed the diversion of $p: $to is back at $p"
    fi
  done
  if [ ${#kept_files[@]} -gt 0 ] || [ ${#kept_diverted[@]} -gt 0 ]; then
    # Keep the directories too, and remember what is left, so that
    # `uninstall --force` can finish the job.
    {
      echo "# collectd-tcpconns install manifest (what uninstall left)"
      for d in "${dirs[@]}"; do printf 'd\t-\t%s\n' "$d"; done
      for i in "${!kept_diverted[@]}"; do
        printf 'v\t%s\t%s\n' "${kept_divert_to[i]}" "${kept_diverted[i]}"
      done
      for i in "${!kept_files[@]}"; do
        printf 'f\t%s\t%s\n' "${kept_sums[i]}" "${kept_files[i]}"
      done
    } > "$manifest.tmp"
    mv -f -- "$manifest.tmp" "$manifest"
    say "some files were kept; $manifest lists them"
    exit 0
  fi
  rm -f -- "$manifest"
  for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    d=${dirs[i]}
    [ -d "$d" ] || continue
    if owner=$(dpkg-query -S "$d" 2>/dev/null); then
      say "kept $d: a package owns it now (${owner%%:*})"
    elif rmdir -- "$d" 2>/dev/null; then
      say "removed $d"
    else
      say "kept $d: not empty"
    fi
  done
  say "uninstalled"
  [ ${#diverted[@]} -eq 0 ] || restart_collectd
  exit 0
fi

# ---------------------------------------------------------------------------
# install: find out where things go
# ---------------------------------------------------------------------------
collectd=${COLLECTD:-$(command -v collectd || echo /usr/sbin/collectd)}
[ -x "$collectd" ] || die "collectd not found (install collectd-core, or set COLLECTD)"
help=$("$collectd" -h 2>&1 || true)
default_config=$(printf '%s\n' "$help" | sed -n 's/^ *Config file  *//p' | head -n 1)
default_plugindir=$(printf '%s\n' "$help" | sed -n 's/^ *Plugin directory  *//p' | head -n 1)
[ -n "$default_plugindir" ] || die "cannot read \"Plugin directory\" from $collectd -h"
[ -n "$config" ] || config=$default_config
[ -n "$config" ] || die "cannot read \"Config file\" from $collectd -h; pass --config"

# The package diverts the same file and uses the default prefix's manifest
# path in its checks: the two would fight over the same files.
if { [ "$layout" = divert ] || [ "$prefix" = "$default_prefix" ]; } &&
  status=$(dpkg-query -W -f='${Status}' collectd-tcpconns 2>/dev/null) &&
  [ "$status" = "install ok installed" ]; then
  die "the Debian package collectd-tcpconns is installed; remove it first (dpkg -r collectd-tcpconns)"
fi
if [ "$layout" = divert ] && ! command -v dpkg-divert >/dev/null 2>&1; then
  die "no dpkg-divert: not a Debian-family host; use --side-by-side"
fi

# The active (uncommented) lines of the main config, if there is one.
active=""
if [ -f "$config" ]; then
  active=$(sed -e 's/^[[:space:]]*//' -e '/^#/d' "$config")
fi
unquote() { local v=${1#\"}; printf '%s' "${v%\"}"; }

# The directory collectd loads plugins from: the main config's own
# PluginDir if it sets one, else collectd's built-in default. The divert
# layout installs there; load.conf switches back to it.
back=$default_plugindir
pd=$(printf '%s\n' "$active" | sed -n 's/^PluginDir[[:space:]]\{1,\}\([^[:space:]#]*\).*/\1/Ip' | tail -n 1)
if [ -n "$pd" ]; then
  back=$(unquote "$pd")
  say "$config sets PluginDir $back: using that plugin directory"
fi
target_so=$back/tcpconns.so
divert_to=$back/tcpconns.so.distrib

# Directories the main config includes (Include "dir", <Include "dir">,
# Include "dir/*.conf").
included=()
while IFS= read -r inc; do
  [ -n "$inc" ] || continue
  inc=$(unquote "$inc")
  case "$inc" in
    *'*'* | *'?'*) inc=$(dirname "$inc") ;;
  esac
  included+=("${inc%/}")
done < <(printf '%s\n' "$active" | sed -n 's/^<\{0,1\}Include[[:space:]]\{1,\}\([^[:space:]>#]*\).*/\1/Ip')

if [ -z "$confdir" ]; then
  for inc in "${included[@]}"; do
    if [ -d "$inc" ]; then confdir=$inc; break; fi
  done
fi
[ -n "$confdir" ] || confdir=$(dirname "$config")/collectd.conf.d
confdir=${confdir%/}
case "$confdir" in /*) ;; *) die "--confdir must be an absolute path" ;; esac

create_main=no
reads_confdir=no
for inc in "${included[@]}"; do
  [ "$inc" = "$confdir" ] && reads_confdir=yes
done
if [ "$layout" = side-by-side ] && [ ! -e "$config" ] && [ "$main_config" = yes ]; then
  create_main=yes
  reads_confdir=yes
fi
if [ "$layout" = side-by-side ] &&
  printf '%s\n' "$active" | grep -qiE '^<?LoadPlugin[[:space:]]+"?tcpconns"?([[:space:]>]|$)'; then
  say "WARNING: $config loads tcpconns itself: that LoadPlugin comes first and loads"
  say "  $back/tcpconns.so (the C plugin); ours is then never loaded. Remove that line."
fi

if [ ${#snippets[@]} -eq 0 ]; then
  case "$layout" in
    divert) snippets=("$here/packaging/tcpconns.conf") ;;
    side-by-side) snippets=(tcpconns.conf) ;;
  esac
fi
sources=()
for s in "${snippets[@]}"; do
  case "$s" in */*) ;; *) s=$here/collectd.d/$s ;; esac
  [ -f "$s" ] || die "no snippet $s"
  sources+=("$s")
done

so=$here/target/release/libtcpconns.so
if [ "$build" = yes ]; then
  say "building: cargo build --release --lib"
  (cd "$here" && cargo build --release --lib) || die "cargo build failed (build first and pass --no-build if cargo is not on root's PATH)"
fi
[ -f "$so" ] || die "no $so (build with cargo build --release --lib)"

# ---------------------------------------------------------------------------
# install: the contents, in a scratch directory first
# ---------------------------------------------------------------------------
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
targets=() stagefiles=() modes=() kinds=() origins=()
add() { # add TARGET STAGED MODE KIND(binary|config) ORIGIN
  targets+=("$1"); stagefiles+=("$2"); modes+=("$3"); kinds+=("$4"); origins+=("$5")
}
cp "$so" "$stage/tcpconns.so"
if [ "$layout" = divert ]; then
  add "$target_so" "$stage/tcpconns.so" 644 binary "$so"
else
  add "$prefix/tcpconns.so" "$stage/tcpconns.so" 644 binary "$so"
  awk -v ours="$prefix" -v back="$back" '
  /^[[:space:]]*PluginDir[[:space:]]/ {
    n++
    if (n == 1) { print "PluginDir \"" ours "\""; next }
    if (n == 2) { print "PluginDir \"" back "\""; next }
  }
  { print }
  END { if (n != 2) exit 3 }
' "$here/packaging/load.conf" > "$stage/load.conf" || die "packaging/load.conf must have exactly two PluginDir lines"
  add "$prefix/load.conf" "$stage/load.conf" 644 binary "$here/packaging/load.conf"
fi

for s in "${sources[@]}"; do
  name=$(basename "$s")
  if [ "$layout" = side-by-side ]; then
    # Side by side, `LoadPlugin tcpconns` would load the C plugin: the
    # snippet loads ours through load.conf instead.
    include="Include \"$prefix/load.conf\""
    awk -v include="$include" '
      /^[[:space:]]*LoadPlugin[[:space:]]+"?tcpconns"?[[:space:]]*$/ { print include; next }
      { print }
    ' "$s" > "$stage/$name"
  else
    cp "$s" "$stage/$name"
  fi
  add "$confdir/$name" "$stage/$name" 644 config "$s"
done

if [ "$create_main" = yes ]; then
  cat > "$stage/main.conf" <<EOF
# collectd's main config, created by collectd-tcpconns' ci/install.sh because
# there was none (Debian's collectd-core ships no main config; the "collectd"
# package does). \`ci/install.sh uninstall\` removes it.
# It logs to syslog and reads the snippets in $confdir.
LoadPlugin syslog
<Plugin syslog>
  LogLevel info
</Plugin>

<Include "$confdir">
  Filter "*.conf"
</Include>
EOF
  add "$config" "$stage/main.conf" 644 config "what ci/install.sh writes"
fi

# ---------------------------------------------------------------------------
# install: check every target before changing anything
# ---------------------------------------------------------------------------
declare -A old_sum=()
old_dirs=() old_diversions=()
if [ -f "$manifest" ]; then
  while IFS=$'\t' read -r kind sum path; do
    case "$kind" in
      f) old_sum[$path]=$sum ;;
      d) old_dirs+=("$path") ;;
      v) old_diversions+=("$(printf 'v\t%s\t%s' "$sum" "$path")") ;;
    esac
  done < "$manifest"
  say "updating the install recorded in $manifest"
fi
diverted_by_us=no
for v in "${old_diversions[@]}"; do
  [ "${v##*$'\t'}" = "$target_so" ] && diverted_by_us=yes
done
if [ "$layout" = divert ] && [ "$diverted_by_us" = no ]; then
  holder=$(dpkg-divert --listpackage "$target_so")
  [ -z "$holder" ] || die "$target_so is diverted already (by $holder): not touching it (nothing was changed)"
  [ -e "$target_so" ] || [ -L "$target_so" ] ||
    say "NOTE: there is no $target_so to divert (collectd-core not installed?); diverting anyway, so a later install of it keeps ours"
  [ ! -e "$divert_to" ] || die "$divert_to exists: not touching it (nothing was changed)"
fi
for i in "${!targets[@]}"; do
  t=${targets[i]}
  # The C plugin in the plugin directory is what the divert layout moves
  # aside, not a file in the way.
  [ "$layout" = divert ] && [ "$t" = "$target_so" ] && [ "$diverted_by_us" = no ] && continue
  if { [ -e "$t" ] || [ -L "$t" ]; } && [ -z "${old_sum[$t]:-}" ]; then
    die "$t exists and was not installed by this script: not touching it (nothing was changed)"
  fi
done
if [ -e "$manifest" ] && [ ! -f "$manifest" ]; then
  die "$manifest is not a file"
fi

# Every target directory must be writable, or creatable, by this user.
for t in "${targets[@]}" "$manifest"; do
  p=$(dirname "$t")
  while [ ! -e "$p" ]; do p=$(dirname "$p"); done
  [ -w "$p" ] || die "cannot write to $p: run as root (nothing was changed)"
done

# ---------------------------------------------------------------------------
# install: do it
# ---------------------------------------------------------------------------
new_dirs=("${old_dirs[@]}")
make_dir() { # creates DIR and its missing parents, remembering each one made
  local d=$1 missing=() p
  p=$d
  while [ ! -d "$p" ]; do
    [ -e "$p" ] && die "$p exists and is not a directory"
    missing=("$p" "${missing[@]}")
    p=$(dirname "$p")
  done
  for p in "${missing[@]}"; do
    mkdir -m 755 -- "$p"
    new_dirs+=("$p")
    say "created $p/"
  done
}

write_manifest() { # the directories, diversions and entries recorded so far
  {
    echo "# collectd-tcpconns install manifest: what ci/install.sh created (f: file, sha256; d: directory; v: diversion, diverted-to name)"
    for d in "${new_dirs[@]}"; do printf 'd\t-\t%s\n' "$d"; done
    for v in "${diversions[@]}"; do printf '%s\n' "$v"; done
    for e in "${entries[@]}"; do printf '%s\n' "$e"; done
  } > "$manifest.tmp"
  mv -f -- "$manifest.tmp" "$manifest"
}

entries=()
diversions=("${old_diversions[@]}")
if [ "$layout" = divert ] && [ "$diverted_by_us" = no ]; then
  make_dir "$prefix"
  dpkg-divert --local --rename --divert "$divert_to" --add "$target_so" >/dev/null ||
    die "dpkg-divert --add $target_so failed"
  diversions+=("$(printf 'v\t%s\t%s' "$divert_to" "$target_so")")
  # Recorded at once, so that uninstall undoes it even if a step below fails.
  write_manifest
  say "diverted $target_so to $divert_to (dpkg-divert --local)"
fi
for i in "${!targets[@]}"; do
  t=${targets[i]} src=${stagefiles[i]}
  new=$(sha "$src")
  if [ -n "${old_sum[$t]:-}" ] && [ -e "$t" ] && [ "${kinds[i]}" = config ] &&
    [ "$(sha "$t")" != "${old_sum[$t]}" ]; then
    say "kept $t: you changed it since install (the new version: ${origins[i]})"
    entries+=("$(printf 'f\t%s\t%s' "${old_sum[$t]}" "$t")")
    continue
  fi
  make_dir "$(dirname "$t")"
  # A new file renamed into place: a running collectd keeps the old one mapped.
  tmp=$(mktemp "$(dirname "$t")/.tcpconns-install.XXXXXX")
  cat "$src" > "$tmp"
  chmod "${modes[i]}" "$tmp"
  mv -f -- "$tmp" "$t"
  entries+=("$(printf 'f\t%s\t%s' "$new" "$t")")
  say "installed $t"
done
# Files of an earlier install that this one no longer installs stay listed,
# so uninstall still removes them.
for t in "${!old_sum[@]}"; do
  found=no
  for x in "${targets[@]}"; do [ "$x" = "$t" ] && found=yes; done
  [ $found = yes ] || entries+=("$(printf 'f\t%s\t%s' "${old_sum[$t]}" "$t")")
done
make_dir "$prefix"
write_manifest
say "recorded in $manifest"

if [ "$create_main" = yes ]; then
  say "$config did not exist: created a minimal one that reads $confdir/*.conf"
elif [ "$reads_confdir" = no ] && [ "${sources[*]}" != "$here/packaging/tcpconns.conf" ]; then
  say "NOTE: $config does not include $confdir, so collectd does not read the snippet yet."
  say "  Add these lines at its end (after its other LoadPlugin lines):"
  say "    <Include \"$confdir\">"
  say "      Filter \"*.conf\""
  say "    </Include>"
fi
if [ "$layout" = divert ]; then
  say "every configuration with \`LoadPlugin tcpconns\` now loads $target_so (ours);"
  say "  the C plugin is at $divert_to until \`ci/install.sh uninstall\`"
  restart_collectd
else
  say "done; restart collectd to load it (systemctl restart collectd)"
fi

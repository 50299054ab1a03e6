# yaml2flat.awk: the YAML subset cloud-init documents use, flattened to "path<TAB>value" lines.
#
# Paths join mapping keys and sequence indexes with dots: users.0.name, runcmd.1.0, ...
# Values escape backslash as \\ and newline as \n. Supported: block mappings and sequences
# (also a sequence at its key's indent), "- key: value" items, flow sequences [a, "b"] and flow
# mappings {a: b} (one level), plain, 'single' and "double" quoted scalars, block scalars
# (| |- |+ > >-), comments, document markers. Not supported: anchors/aliases, tags, multi-line
# quoted or plain scalars, complex keys. Runs under busybox awk.

function esc(s) { gsub(/\\/, "\\\\", s); gsub(/\n/, "\\n", s); gsub(/\t/, "\\t", s); return s }
function emit(p, v) { printf "%s\t%s\n", p, esc(v) }
function ltrim(s) { sub(/^[ \t]+/, "", s); return s }
function rtrim(s) { sub(/[ \t]+$/, "", s); return s }
function trim(s) { return rtrim(ltrim(s)) }
function join(a, k) { return a == "" ? k : a "." k }

function unquote(s,    r, i, n, c, h) {
  s = trim(s)
  n = length(s)
  if (substr(s, 1, 1) == "\"") {
    r = ""
    for (i = 2; i <= n; i++) {
      c = substr(s, i, 1)
      if (c == "\\") {
        i++; c = substr(s, i, 1)
        if (c == "n") c = "\n"; else if (c == "t") c = "\t"; else if (c == "r") c = "\r"
        else if (c == "0") c = ""
        r = r c; continue
      }
      if (c == "\"") break
      r = r c
    }
    return r
  }
  if (substr(s, 1, 1) == "'") {
    r = ""
    for (i = 2; i <= n; i++) {
      c = substr(s, i, 1)
      if (c == "'") { if (substr(s, i + 1, 1) == "'") { r = r "'"; i++; continue } break }
      r = r c
    }
    return r
  }
  if (s == "~" || s == "null" || s == "Null" || s == "NULL") return ""
  return s
}

# Strip a trailing comment (" #..." outside quotes) from a line's content.
function strip_comment(s,    i, n, c, q, prev) {
  n = length(s); q = ""; prev = " "
  for (i = 1; i <= n; i++) {
    c = substr(s, i, 1)
    if (q != "") {
      if (q == "\"" && c == "\\") { i++; prev = "x"; continue }
      if (c == q) q = ""
      prev = c; continue
    }
    if ((c == "\"" || c == "'") && (prev == " " || prev == "\t" || prev == "[" || prev == "{" || prev == "," || prev == ":" || prev == "-")) { q = c; prev = c; continue }
    if (c == "#" && (prev == " " || prev == "\t")) return rtrim(substr(s, 1, i - 1))
    prev = c
  }
  return rtrim(s)
}

# Position of the ":" that ends a mapping key (followed by blank or end), or 0.
function key_colon(s,    i, n, c, q) {
  n = length(s)
  c = substr(s, 1, 1)
  if (c == "[" || c == "{") return 0
  if (c == "\"" || c == "'") {
    q = c
    for (i = 2; i <= n; i++) {
      c = substr(s, i, 1)
      if (q == "\"" && c == "\\") { i++; continue }
      if (c == q) break
    }
    if (substr(s, i + 1, 1) == ":" && (i + 1 == n || substr(s, i + 2, 1) ~ /[ \t]/)) return i + 1
    return 0
  }
  for (i = 1; i <= n; i++) {
    if (substr(s, i, 1) == ":" && (i == n || substr(s, i + 1, 1) ~ /[ \t]/)) return i
  }
  return 0
}

# Split the inside of a flow collection on top-level commas into parts[1..n].
function flow_split(s, parts,    i, n, c, q, depth, cur, k) {
  n = length(s); q = ""; depth = 0; cur = ""; k = 0
  for (i = 1; i <= n; i++) {
    c = substr(s, i, 1)
    if (q != "") {
      if (q == "\"" && c == "\\") { cur = cur c substr(s, i + 1, 1); i++; continue }
      if (c == q) q = ""
      cur = cur c; continue
    }
    if (c == "\"" || c == "'") { q = c; cur = cur c; continue }
    if (c == "[" || c == "{") depth++
    if (c == "]" || c == "}") depth--
    if (c == "," && depth == 0) { parts[++k] = trim(cur); cur = ""; continue }
    cur = cur c
  }
  if (trim(cur) != "") parts[++k] = trim(cur)
  return k
}

function scalar(p, v,    parts, n, j, inner, kc, m) {
  v = trim(v)
  if (substr(v, 1, 1) == "[" && substr(v, length(v), 1) == "]") {
    inner = substr(v, 2, length(v) - 2)
    n = flow_split(inner, parts)
    if (n == 0) { emit(p, ""); return }
    for (j = 1; j <= n; j++) scalar(p "." (j - 1), parts[j])
    return
  }
  if (substr(v, 1, 1) == "{" && substr(v, length(v), 1) == "}") {
    inner = substr(v, 2, length(v) - 2)
    n = flow_split(inner, parts)
    if (n == 0) { emit(p, ""); return }
    for (j = 1; j <= n; j++) {
      kc = key_colon(parts[j])
      if (kc == 0) { emit(join(p, unquote(parts[j])), ""); continue }
      scalar(join(p, unquote(substr(parts[j], 1, kc - 1))), substr(parts[j], kc + 1))
    }
    return
  }
  emit(p, unquote(v))
}

function push(i, k, p) { d++; ind[d] = i; kind[d] = k; pth[d] = p; cnt[d] = 0 }

function start_block(p, style, parent) {
  blk = 1; blkpath = p; blkstyle = style; blkparent = parent; blkind = -1; blkbuf = ""; blkn = 0; blkblank = 0
}

function finish_block(    chomp, s) {
  chomp = blkstyle; s = blkbuf
  if (substr(blkstyle, 1, 1) == ">") {
    # folding (simplified): single newlines between non-empty lines become spaces
    gsub(/\n\n/, "\001", s); gsub(/\n/, " ", s); gsub(/\001/, "\n", s)
  }
  if (chomp ~ /-/) { }
  else if (chomp ~ /\+/) { s = s "\n"; while (blkblank-- > 0) s = s "\n" }
  else if (blkn > 0) s = s "\n"
  emit(blkpath, s)
  blk = 0
}

function process(c, i,    idx, p, rest, off, kc, k, v) {
  if (d == 0 && kind[0] == "map" && cnt[0] == 0 && c ~ /^-( |$)/) kind[0] = "seq"
  if (kind[d] == "seq" && c ~ /^-( |$)/) {
    idx = cnt[d]++; p = join(pth[d], idx)
    rest = substr(c, 2); off = i + 1
    while (substr(rest, 1, 1) == " ") { rest = substr(rest, 2); off++ }
    if (rest == "") { pending = 1; pind = i; ppath = p; return }
    if (rest ~ /^[|>][-+0-9]*$/) { start_block(p, rest, i); return }
    if (rest ~ /^-( |$)/) { push(off, "seq", p); process(rest, off); return }
    if (key_colon(rest) > 0) { push(off, "map", p); process(rest, off); return }
    scalar(p, rest)
    return
  }
  if (kind[d] == "map") {
    kc = key_colon(c)
    if (kc == 0) return
    cnt[d]++
    k = unquote(substr(c, 1, kc - 1)); v = trim(substr(c, kc + 1))
    p = join(pth[d], k)
    if (v == "") { pending = 1; pind = i; ppath = p; return }
    if (v ~ /^[|>][-+0-9]*$/) { start_block(p, v, i); return }
    scalar(p, v)
  }
}

BEGIN { d = 0; ind[0] = -1; kind[0] = "map"; pth[0] = ""; cnt[0] = 0; pending = 0; blk = 0 }

{
  line = $0
  sub(/\r$/, "", line)
  if (blk) {
    if (line ~ /^[ \t]*$/) { if (blkn > 0) blkblank++; next }
    match(line, /^ */); li = RLENGTH
    if (li > blkparent) {
      if (blkind < 0) blkind = li
      if (blkn > 0) { blkbuf = blkbuf "\n"; while (blkblank > 0) { blkbuf = blkbuf "\n"; blkblank-- } }
      blkbuf = blkbuf substr(line, (li < blkind ? li : blkind) + 1); blkn++
      next
    }
    finish_block()
  }
  if (line ~ /^[ \t]*(#.*)?$/) next
  if (line ~ /^(---|\.\.\.)([ \t]|$)/) next
  match(line, /^ */); i = RLENGTH
  c = strip_comment(substr(line, i + 1))
  if (c == "") next
  if (pending) {
    pending = 0
    if (i > pind || (i == pind && c ~ /^-( |$)/)) push(i, (c ~ /^-( |$)/) ? "seq" : "map", ppath)
    else emit(ppath, "")
  }
  while (d > 0 && (i < ind[d] || (i == ind[d] && kind[d] == "seq" && c !~ /^-( |$)/))) d--
  process(c, i)
}

END {
  if (blk) finish_block()
  if (pending) emit(ppath, "")
}

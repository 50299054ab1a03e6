# json2flat.awk: JSON flattened to "path<TAB>value" lines (same format as yaml2flat.awk).
# Object keys and array indexes are joined with dots; values escape \ as \\ and newline as \n.
# Used for ConfigDrive's meta_data.json and network_data.json. Runs under busybox awk.

function esc(s) { gsub(/\\/, "\\\\", s); gsub(/\n/, "\\n", s); gsub(/\t/, "\\t", s); return s }
function emit(p, v) { printf "%s\t%s\n", p, esc(v) }
function join(a, k) { return a == "" ? k : a "." k }
function ws() { while (pos <= n && substr(s, pos, 1) ~ /[ \t\r\n]/) pos++ }
function hexval(h,    i, v, c) {
  v = 0; h = tolower(h)
  for (i = 1; i <= length(h); i++) { c = index("0123456789abcdef", substr(h, i, 1)) - 1; v = v * 16 + c }
  return v
}
function str(    r, c, cp) {
  r = ""; pos++
  while (pos <= n) {
    c = substr(s, pos, 1)
    if (c == "\"") { pos++; return r }
    if (c == "\\") {
      pos++; c = substr(s, pos, 1)
      if (c == "n") c = "\n"; else if (c == "t") c = "\t"; else if (c == "r") c = "\r"
      else if (c == "b") c = "\b"; else if (c == "f") c = "\f"
      else if (c == "u") {
        cp = hexval(substr(s, pos + 1, 4)); pos += 4
        c = cp < 128 ? sprintf("%c", cp) : "?"
      }
    }
    r = r c; pos++
  }
  return r
}
function value(path,    c, k, i, lit) {
  ws(); c = substr(s, pos, 1)
  if (c == "{") {
    pos++; ws()
    if (substr(s, pos, 1) == "}") { pos++; return }
    while (pos <= n) {
      ws(); k = str(); ws()
      if (substr(s, pos, 1) == ":") pos++
      value(join(path, k)); ws()
      c = substr(s, pos, 1); pos++
      if (c != ",") return
    }
    return
  }
  if (c == "[") {
    pos++; ws(); i = 0
    if (substr(s, pos, 1) == "]") { pos++; return }
    while (pos <= n) {
      value(join(path, i++)); ws()
      c = substr(s, pos, 1); pos++
      if (c != ",") return
    }
    return
  }
  if (c == "\"") { emit(path, str()); return }
  lit = ""
  while (pos <= n && index(",}] \t\r\n", substr(s, pos, 1)) == 0) { lit = lit substr(s, pos, 1); pos++ }
  if (lit == "null") lit = ""
  emit(path, lit)
}
{ s = s $0 "\n" }
END { n = length(s); pos = 1; value("") }

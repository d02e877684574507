#!/usr/bin/env bash
# Opens a sweep's report.html in headless Chromium with the network cut off and checks, from a
# screenshot, that the charts are drawn: the fault windows' shading and the availability line are
# on the page. Installs Debian's `chromium` when it is missing.
#
# Usage: ci/report-browser-check.sh [SWEEP_DIR] [SCREENSHOT]
#   (default: a fresh smoke sweep of a few seeds; the screenshot goes to target/chaos/report.png)
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${1:-}"
shot="${2:-target/chaos/report.png}"
if [ -z "$dir" ]; then
    dir="target/chaos/browser-check"
    cargo chaos sweep --scenario smoke --seeds 0..4 --jobs 2 --out "$dir" > /dev/null 2>&1 || true
fi
[ -s "$dir/report.html" ] || { echo "error: no $dir/report.html" >&2; exit 1; }

browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
    echo "installing chromium (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
    browser="$(command -v chromium)"
fi

mkdir -p "$(dirname "$shot")"
page="file://$(cd "$dir" && pwd)/report.html"
# No network: every host name fails to resolve, and no proxy is used.
"$browser" --headless --no-sandbox --disable-gpu --no-proxy-server --host-resolver-rules="MAP * ~NOTFOUND" \
    --hide-scrollbars --window-size=1000,1100 --screenshot="$shot" "$page" > /dev/null 2>&1

python3 - "$shot" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, width, height = 8, b"", 0, 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        width, height, depth, color = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and color in (2, 6), f"unexpected PNG format {depth} {color}"
        bpp = 3 if color == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
stride = width * bpp
rows, prev, i = [], bytearray(stride), 0
for _ in range(height):
    f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
    i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b, c = prev[x], prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line)
    prev = line
def count(pred):
    return sum(1 for r in rows for x in range(0, stride, bpp) if pred(r[x], r[x + 1], r[x + 2]))
# The fault shading: #D64541 at 15% over white, about (250, 235, 235).
shaded = count(lambda r, g, b: r >= 245 and 225 <= g <= 242 and 225 <= b <= 242 and abs(g - b) <= 4)
# Any strongly coloured pixel: the series lines (plotters' palette) and labels.
coloured = count(lambda r, g, b: max(r, g, b) - min(r, g, b) > 80)
print(f"screenshot {width}x{height}: {shaded} shaded fault-window pixels, {coloured} coloured chart pixels")
if shaded < 500 or coloured < 200:
    sys.exit("error: the charts are not drawn (no fault shading or no series) in the browser")
PY
echo "report.html renders its charts offline; screenshot: $shot"

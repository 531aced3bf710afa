#!/usr/bin/env bash
# 20 bad inputs by hand, on a clean checkout: each must print one clear line (plus a hint) and exit non-zero.
# Usage: bash docs/bad_inputs_sample.sh   (CNNKIT=path/to/cnnkit to pick the executable)
C=${CNNKIT:-cnnkit}
work=$(mktemp -d); cd "$work"  # a scratch folder: nothing of yours is touched
$C train --model linear --epochs 1 --augment none --name ok --quiet >/dev/null 2>&1 || { echo "setup failed"; exit 1; }
mkdir photos; echo precious > photos/a.jpg; echo notes > notes.txt
cp -r runs/ok runs/badyaml; printf 'model: [unclosed\n' > runs/badyaml/config.yaml
cp -r runs/ok runs/badside; echo '{"format": "cnnkit-weights/1", "model": 3}' > runs/badside/best.json
cp -r runs/ok runs/badck; head -c 2000 /dev/urandom > runs/badck/checkpoint.pt
: > empty.png; head -c 300 /dev/urandom > noise.png
python3 -c "import zlib,struct;raw=b''.join(b'\\x00'+bytes([x*8%256 for x in range(16)]) for _ in range(16));c=lambda t,d:struct.pack('>I',len(d))+t+d+struct.pack('>I',zlib.crc32(t+d));open('digit.png','wb').write(b'\\x89PNG\\r\\n\\x1a\\n'+c(b'IHDR',struct.pack('>IIBBBBB',16,16,8,0,0,0,0))+c(b'IDAT',zlib.compress(raw))+c(b'IEND',b''))"; cp digit.png style.png
n=0
t() { n=$((n+1)); printf '%2d $ cnnkit %s\n' "$n" "$*"; out=$($C "$@" 2>&1 >/dev/null); rc=$?; printf '%s\n   -> exit %s\n' "$out" "$rc" | sed 's/^/   /'; }
t train --name .. --overwrite
t train --name "" --overwrite
t train --runs-dir . --name photos --overwrite
t train --name ../../x
t train --seed -1
t train --input-size 100000
t train --model-args '{hidden: [300'
t train --optimizer adamm
t train --augment 'translate=2,wobble=3'
t eval runs/badyaml
t predict runs/badside empty.png
t train --resume runs/badck
t predict runs/ok noise.png empty.png
t summary vgg16 --input 3x100000x100000
t eval runs/ok --split tset
t features runs/ok --pca 0
t fit-head notes.txt
t style-transfer digit.png style.png -o style.png
t fool runs/ok noise.png --eps 2
t compare runs/ok -o notes.txt
echo; echo "user files after: $(cat photos/a.jpg) / $(cat notes.txt) / style.png $(cmp -s style.png digit.png && echo unchanged || echo CHANGED)"

#!/usr/bin/env bash
# Writes the seed corpora in tests/fuzz/corpus/<target>/ (a few dozen bytes each). The layouts
# follow include/uipc/abi/layout.hpp as of ABI version 3 (ChannelHeader 192 bytes, RingIndices
# 192 bytes); after an ABI change, update the constants below and run this again.
# Input formats: the comment at the top of each fuzz_*.cpp and docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")"

ABI_VERSION=3
HEADER=192
INDICES=192
PAGE=4096

u8() { printf "\\x$(printf %02x $(($1 & 0xff)))"; }
le() {  # value bytes
  local v=$1 n=$2 i
  for ((i = 0; i < n; i++)); do u8 $((v >> (8 * i))); done
}
u16() { le "$1" 2; }
u32() { le "$1" 4; }
u64() { le "$1" 8; }

# ---- fuzz_channel_header: [pages - 1] [region bytes ...] -----------------------------------
# A channel header for (capacity, max_payload) in a region of `pages` pages; `version` and
# `magic` can be spoiled to make refused seeds.
header() {  # pages capacity max_payload [version] [magic]
  local pages=$1 cap=$2 payload=$3 version=${4:-$ABI_VERSION} magic=${5:-0x7569706343484e4c}
  local stride=$(( (24 + payload + 63) / 64 * 64 ))
  local req_idx=$HEADER resp_idx=$((HEADER + INDICES)) req_ent=$((HEADER + 2 * INDICES))
  local resp_ent=$((req_ent + cap * stride))
  u8 $((pages - 1))
  u64 "$magic"; u32 "$version"; u32 $HEADER; u64 $((pages * PAGE))
  u32 "$cap"; u32 "$payload"; u32 $stride; u32 1; u32 2; u32 0
  u64 $req_idx; u64 $resp_idx; u64 $req_ent; u64 $resp_ent
}
d=corpus/fuzz_channel_header
rm -rf "$d" && mkdir -p "$d"
header 1 2 16 >"$d/valid-cap2-payload16"
header 1 4 64 >"$d/valid-cap4-payload64"
header 9 16 1024 >"$d/valid-cap16-payload1024"
header 1 16 1024 >"$d/too-small-region"
header 1 4 64 2 >"$d/old-version"
header 1 3 64 >"$d/capacity-not-pow2"

# ---- fuzz_ring: [capacity: 1 << (1 + b % 6)] [max_payload: 16 + b % 241] [base index u32] ops --
# ops (byte % 14): 0,1 claim+publish [u16 r: len = (r >> 3) % (max + 1), or r & 7 == 0: u32 len]
#   2 claim  3,4 peek  5 pop  6 release  7 arm_data_wait  8 disarm  9 flush  10 arm_space_wait
#   11 scribble index [which] [mode] [delta]  12 scribble entry [u16 index] [field] [mode] [delta]
#   13 re-attach [producer if odd]
d=corpus/fuzz_ring
rm -rf "$d" && mkdir -p "$d"
pub() { u8 0; u16 $((($1 << 3) | 1)); }  # publish a well-formed entry of length $1
{ u8 1; u8 32; u32 0; pub 5; u8 3; u8 5; u8 6; u8 7; pub 0; u8 9; u8 3; u8 5; u8 6; } >"$d/fifo"
{ u8 1; u8 0; u32 0xfffffffe; pub 1; pub 2; pub 3; pub 4; u8 10; u8 2; u8 3; u8 5; u8 6; pub 7; u8 3; u8 5; u8 3; u8 5; u8 6; } >"$d/wrap-full"
{ u8 0; u8 0; u32 7; pub 3; u8 11; u8 2; u8 2; u8 9; u8 0; u8 10; u8 2; } >"$d/corrupt-head"
{ u8 2; u8 16; u32 0; u8 0; u16 0; u32 100000; u8 3; u8 7; u8 3; } >"$d/oversize-len"
{ u8 1; u8 0; u32 40; u8 12; u16 40; u8 0; u8 1; u8 1; u8 3; u8 13; u8 0; u8 13; u8 1; u8 3; } >"$d/forged-seq"

# ---- fuzz_hostile_peer: [capacity: 1 << (1 + b % 4)]
#      [max_payload: 16 * (1 + b % 4); bit 7: the server runs an InlineHandler]
#      [pre-adopt count b % 4, then that many: op(b % 4) args] ops --------------------------------
# ops (byte % 14): 0,1 push [len] [first] [u64 id] [status? 0xff + u32] [signal mode]
#   2 push with u32 len  3 write entry  4 write index  5 closed flags [mode]  6 write anywhere
#   7 consume [n] [release?]  8 signal  9 settle [rounds]  10,11 good call [len] [first byte]
#   12 notification word [which] [u64 bits]  13 re-attach the hostile ring ends
d=corpus/fuzz_hostile_peer
rm -rf "$d" && mkdir -p "$d"
good() { u8 10; u8 "$1"; u8 "$2"; }
push() { u8 0; u8 "$1"; u8 "$2"; u64 "$3"; u8 0; u8 0; }
{ u8 1; u8 1; u8 0; good 5 1; good 0 0; good 64 0xef; good 3 0xee; u8 9; u8 3; good 7 9; } >"$d/good-calls"
{ u8 0; u8 0; u8 0; push 4 1 7; push 8 2 8; good 5 1; u8 9; u8 1; u8 7; u8 4; u8 1; push 1 0xef 9; good 6 3; } >"$d/push-consume"
{ u8 1; u8 1; u8 0; good 5 1; u8 2; u32 0x10000; u8 1; u64 1; u8 0; u8 0; good 9 2; u8 9; u8 2; good 4 4; } >"$d/oversize-len"
{ u8 0; u8 0; u8 1; u8 0; u8 0; u8 2; u8 1; u8 100; push 4 1 1; push 4 1 2; push 4 1 3; u8 9; u8 2; good 8 8; } >"$d/corrupt-resp-head"
{ u8 2; u8 2; u8 0; good 5 1; u8 12; u8 2; u64 0xffffffffffffffff; u8 12; u8 0; u64 0xffffffffffffffff; u8 5; u8 0; good 3 0xee; u8 5; u8 2; u8 13; push 3 3 3; good 2 2; } >"$d/flags-and-doorbells"
{ u8 1; u8 0x81; u8 0; good 5 1; push 4 1 7; good 64 0xef; good 3 0xee; push 9 0xee 8; u8 9; u8 2; u8 7; u8 2; u8 1; good 7 9; } >"$d/inline-handler"
echo "seed corpora written: $(cat corpus/*/* | wc -c) bytes in $(find corpus -type f | wc -l) files"

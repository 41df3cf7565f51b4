# Sourced by bench/gpu.sh and bench/gpu_scale.sh (they set OUT, TOTAL and START).
# part NAME BUDGET CMD...: runs CMD with stdout to $OUT/NAME.json (to $OUT/NAME for a NAME ending in
# .txt), stderr to $OUT/NAME.log, for at most BUDGET seconds and never past the total budget.
part() {
  local name=$1 budget=$2
  shift 2
  local left=$((TOTAL - (SECONDS - START)))
  ((budget > left)) && budget=$left
  if ((budget < 15)); then
    echo "== $name: skipped (total budget spent)" | tee -a "$OUT/parts.txt"
    return
  fi
  local t0=$SECONDS file="$OUT/$name.json"
  [[ $name == *.txt ]] && file="$OUT/$name"
  timeout -k 5 "$budget" "$@" >"$file" 2>"$OUT/$name.log"
  local rc=$?
  local msg="== $name: rc $rc in $((SECONDS - t0)) s (budget $budget s)"
  ((rc == 124)) && msg="$msg TIMED OUT"
  echo "$msg" | tee -a "$OUT/parts.txt"
  ((rc != 0)) && tail -n 5 "$OUT/$name.log"
  return 0
}

# Sourced by bench scripts. stats "v1 v2 ..." -> "median min max" (2 decimals)
stats() {
    printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {
        if (NR == 0) { print "nan nan nan"; exit }
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%.2f %.2f %.2f\n", m, a[1], a[NR] }'
}
# ratio A B -> A/B with 2 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }

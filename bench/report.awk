# report.awk - bench/run's report from the RESULT lines of one run (results.txt): the
# coupond/Redis table (per configuration, the median of the ratios taken within each round),
# the mixed-load latency line, the goals of issue 10, a per-round detail table, the load the
# machine had meanwhile, and the table of the scenarios that run once.
#
# Usage: awk -f bench/report.awk [-v baseline=OLD/results.txt] results.txt
# With a baseline (an earlier run, e.g. of the last release), each configuration's ratios are
# compared with that run's: ratios, not ops/s, carry over from one run to another on a shared
# machine, because both servers met the same load within each round.

# Splits one result line into f[key] = value.
function parse(line,    t, n, i, k) {
    delete f
    n = split(line, t, " ")
    for (i = 1; i <= n; i++) {
        k = t[i]
        sub(/=.*/, "", k)
        f[k] = substr(t[i], length(k) + 2)
    }
}

# Sorts the numbers of the space-separated list s into a[1..n]; returns n.
function sortnum(s, a,    n, i, j, v) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) {
        v = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]
        a[j + 1] = v
    }
    return n
}
function median(s,    a, n) {
    n = sortnum(s, a)
    if (n == 0) return ""
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function lowest(s,    a, n) { n = sortnum(s, a); return n ? a[1] : "" }
function highest(s,    a, n) { n = sortnum(s, a); return n ? a[n] : "" }
function count(s,    a) { return split(s, a, " ") }

function commas(x,    neg, out) {
    if (x == "") return "-"
    x = sprintf("%.0f", x)
    neg = x ~ /^-/
    if (neg) x = substr(x, 2)
    out = ""
    while (length(x) > 3) {
        out = "," substr(x, length(x) - 2) out
        x = substr(x, 1, length(x) - 3)
    }
    return (neg ? "-" : "") x out
}
function r2(x) { return x == "" ? "-" : sprintf("%.2f", x) }
function n0(x) { return (x == "" || x == "NA") ? "-" : sprintf("%.0f", x) }
function mb(x) { return (x == "" || x == "NA") ? "-" : sprintf("%.1f", x / 1024) }
function add(arr, k, v) { arr[k] = (k in arr) ? arr[k] " " v : v }

# Reads one results file into the arrays under prefix p ("" for this run, "base" for the
# baseline): the pair and mixed runs by configuration and round.
function load(p, line) {
    parse(line)
    if (f["scen"] == "pair") {
        key = f["pair"] SUBSEP f["conns"] SUBSEP f["pipeline"]
        if (!((p, key) in seen)) {
            seen[p, key] = 1
            order[p, ++nkeys[p]] = key
        }
        r = f["round"] + 0
        if (r > maxround[p]) maxround[p] = r
        s = f["side"]
        if (s == "redis") cmd[p, key] = f["cmd"]
        have[p, key, s, r] = 1
        ops[p, key, s, r] = f["ops_per_s"]
        p50[p, key, s, r] = f["p50_us"]
        p99[p, key, s, r] = f["p99_us"]
        srv[p, key, s, r] = f["srv_cpu"]
        cli[p, key, s, r] = f["client_cpu"]
        errs[p, key] += f["errors"]
        if (f["verify"] != "ok" && f["verify"] != "NA") bad[p, key, s] = 1
        first[p, r] = f["first"]
    } else if (f["scen"] == "mixed") {
        r = f["round"] + 0
        if (r > maxround[p]) maxround[p] = r
        s = f["side"]
        mhave[p, s, r] = 1
        mp99[p, s, r] = f["p99_us"]
        mops[p, s, r] = f["ops_per_s"]
        merrs[p] += f["errors"]
        if (f["verify"] != "ok") mbad[p] = 1
    } else if (f["scen"] == "pool") {
        return
    } else if (p == "") {
        once(line)
        return
    }
    if (p == "" && f["other_pct"] != "") {
        add(other, f["round"], f["other_pct"])
        add(steal, f["round"], f["steal_pct"])
    }
}

# The ratio lists of prefix p: ratios[p, key] in round order, ratio_rounds[p, key] their rounds,
# and the medians of ops/s of each side.
function ratios_of(p,    i, key, r) {
    for (i = 1; i <= nkeys[p]; i++) {
        key = order[p, i]
        for (r = 1; r <= maxround[p]; r++) {
            if ((p, key, "coupond", r) in have)
                add(cops, p SUBSEP key, ops[p, key, "coupond", r])
            if ((p, key, "redis", r) in have)
                add(rops, p SUBSEP key, ops[p, key, "redis", r])
            if (((p, key, "coupond", r) in have) && ((p, key, "redis", r) in have) &&
                ops[p, key, "redis", r] > 0) {
                add(ratios, p SUBSEP key, ops[p, key, "coupond", r] / ops[p, key, "redis", r])
                add(ratio_rounds, p SUBSEP key, r)
            }
        }
    }
}

function label(p, key,    k) {
    split(key, k, SUBSEP)
    return toupper(k[1]) " / " ((p, key) in cmd ? cmd[p, key] : "?")
}

function comparison(    i, key, k, rl) {
    printf "### coupond / Redis, median of %d interleaved rounds\n\n", maxround[""]
    print "| workload | conns | pipe | coupond ops/s (median) | redis ops/s (median) | ratio median | ratio min..max |"
    print "|---|---:|---:|---:|---:|---:|---|"
    for (i = 1; i <= nkeys[""]; i++) {
        key = order["", i]
        split(key, k, SUBSEP)
        rl = ratios["" SUBSEP key]
        printf "| %s | %s | %s | %s | %s | %s | %s..%s |\n", label("", key), commas(k[2]), k[3],
            commas(median(cops["" SUBSEP key])), commas(median(rops["" SUBSEP key])),
            r2(median(rl)), r2(lowest(rl)), r2(highest(rl))
    }
    print ""
    print "Each ratio is coupond's ops/s over Redis's in the same round, the two runs back to back;"
    print "the order alternates (coupond first in odd rounds). Redis: appendonly yes, appendfsync"
    print "always. SET answers REQUEST and REDEEM (both durable writes), GET answers VALIDATE (a read),"
    print "PING_INLINE answers PING (the floor: no work but the round trip)."
}

function mixed_line(    r, v, q, lv, lq, lr, lvo, lqo, rounds) {
    for (r = 1; r <= maxround[""]; r++) {
        if (!(("", "validate", r) in mhave) || !(("", "request", r) in mhave)) continue
        v = mp99["", "validate", r]; q = mp99["", "request", r]
        lv = lv " " v; lq = lq " " q
        lvo = lvo " " mops["", "validate", r]; lqo = lqo " " mops["", "request", r]
        if (q > 0) { lr = lr " " v / q; rounds = rounds " " sprintf("%.2f", v / q) }
    }
    MIXED = median(lr)
    print ""
    printf "### Mixed load: %s connections REQUEST and %s connections VALIDATE at once, pipeline 1\n\n", mixconns, mixconns
    if (lr == "") { print "(no round completed both halves)"; return }
    printf "Median of %d rounds: VALIDATE p99 %s µs while REQUEST p99 %s µs; VALIDATE p99 / REQUEST p99 = **%s** (min..max %s..%s; by round:%s). Throughput meanwhile: VALIDATE %s/s, REQUEST %s/s.%s\n",
        count(lr), commas(median(lv)), commas(median(lq)), r2(MIXED), r2(lowest(lr)), r2(highest(lr)), rounds,
        commas(median(lvo)), commas(median(lqo)),
        (merrs[""] > 0 || ("" in mbad)) ? sprintf(" (errors: %d; verify: %s)", merrs[""], ("" in mbad) ? "FAIL" : "ok") : ""
}

function goal_ratio(name, key, want,    m) {
    m = median(ratios["" SUBSEP key])
    printf "- %s at 100 connections, pipeline 1, at least %.1f x Redis SET: %s, %s\n", name, want,
        r2(m), m == "" ? "not measured" : (m >= want ? "met" : "NOT met")
}

function goals(    i, key, k, b, now, lo, hi, blo, bhi, verdict, any) {
    print ""
    print "### Goals (issue 10), medians of the within-round ratios"
    print ""
    goal_ratio("REQUEST", "request" SUBSEP 100 SUBSEP 1, 1.3)
    goal_ratio("REDEEM", "redeem" SUBSEP 100 SUBSEP 1, 1.3)
    printf "- VALIDATE p99 under the mixed load at most 0.5 x REQUEST p99: %s, %s\n", r2(MIXED),
        MIXED == "" ? "not measured" : (MIXED <= 0.5 ? "met" : "NOT met")
    if (baseline == "") {
        print "- nothing worse than the baseline at pipeline 16 or 1,000 connections: give --baseline DIR"
        return
    }
    printf "- nothing worse than the baseline (%s) at pipeline 16 or 1,000 connections; \"worse\" when\n", baseline
    print "  every ratio of this run is below every ratio of the baseline, \"better\" the other way round:"
    print ""
    print "| workload | conns | pipe | baseline ratio median (min..max) | this run | verdict |"
    print "|---|---:|---:|---|---|---|"
    for (i = 1; i <= nkeys[""]; i++) {
        key = order["", i]
        split(key, k, SUBSEP)
        if (k[3] != 16 && k[2] != 1000) continue
        b = ratios["base" SUBSEP key]; now = ratios["" SUBSEP key]
        if (b == "" || now == "") verdict = "not comparable"
        else if (highest(now) < lowest(b)) verdict = "**worse**"
        else if (lowest(now) > highest(b)) verdict = "better"
        else verdict = "same within the spread"
        printf "| %s | %s | %s | %s (%s..%s) | %s (%s..%s) | %s |\n", label("", key), commas(k[2]), k[3],
            r2(median(b)), r2(lowest(b)), r2(highest(b)), r2(median(now)), r2(lowest(now)), r2(highest(now)), verdict
    }
}

function detail(    i, key, k, r, byr, c50, c99, r50, r99, cs, cc, rs, rc) {
    print ""
    print "### Per configuration: ratio by round, medians of latency and CPU"
    print ""
    print "| workload | conns | pipe | ratio by round | coupond p50 / p99 µs | redis p50 / p99 µs | coupond srv% / cli% | redis srv% / cli% | errors | verify coupond / redis |"
    print "|---|---:|---:|---|---|---|---|---|---:|---|"
    for (i = 1; i <= nkeys[""]; i++) {
        key = order["", i]
        split(key, k, SUBSEP)
        byr = ""; c50 = c99 = r50 = r99 = cs = cc = rs = rc = ""
        for (r = 1; r <= maxround[""]; r++) {
            if (((("", key, "coupond", r) in have)) && (("", key, "redis", r) in have) && ops["", key, "redis", r] > 0)
                byr = byr sprintf(" %.2f", ops["", key, "coupond", r] / ops["", key, "redis", r])
            else
                byr = byr " -"
            if (("", key, "coupond", r) in have) {
                c50 = c50 " " p50["", key, "coupond", r]; c99 = c99 " " p99["", key, "coupond", r]
                cs = cs " " srv["", key, "coupond", r]; cc = cc " " cli["", key, "coupond", r]
            }
            if (("", key, "redis", r) in have) {
                r50 = r50 " " p50["", key, "redis", r]; r99 = r99 " " p99["", key, "redis", r]
                rs = rs " " srv["", key, "redis", r]; rc = rc " " cli["", key, "redis", r]
            }
        }
        printf "| %s | %s | %s |%s | %s / %s | %s / %s | %s / %s | %s / %s | %d | %s / %s |\n", label("", key),
            commas(k[2]), k[3], byr, commas(median(c50)), commas(median(c99)), commas(median(r50)),
            commas(median(r99)), n0(median(cs)), n0(median(cc)), n0(median(rs)), n0(median(rc)),
            errs["", key], (("", key, "coupond") in bad) ? "FAIL" : "ok", (("", key, "redis") in bad) ? "FAIL" : "ok"
    }
}

function machine(    r, a, n, i, s) {
    print ""
    print "Load from outside the benchmark, per round (mean over its runs): \"other\" is CPU that other"
    print "processes used, \"steal\" is time the hypervisor gave the virtual CPUs to someone else;"
    print "both are shares of all cores. A round with much of either slows whichever server it fell on."
    print ""
    for (r = 1; r <= maxround[""]; r++) {
        if (!(r in other)) continue
        n = split(other[r], a, " "); s = 0
        for (i = 1; i <= n; i++) s += a[i]
        printf "- round %d (%s first): other %.0f%%", r, first["", r], n ? s / n : 0
        n = split(steal[r], a, " "); s = 0
        for (i = 1; i <= n; i++) s += a[i]
        printf ", steal %.0f%%\n", n ? s / n : 0
    }
}

# The scenarios that run once (or a few times): one row per scenario, workload and shape.
function once(line,    key, n, m, ms, nm) {
    key = f["scen"] SUBSEP f["workload"] SUBSEP f["conns"] SUBSEP f["pipeline"]
    if (!(key in ocnt)) { oorder[++onkeys] = key; ostore[key] = f["store"] }
    n = ++ocnt[key]
    nm = split("ops_per_s p50_us p99_us p999_us max_us srv_cpu srv_anon_kb client_cpu", ms, " ")
    for (m = 1; m <= nm; m++) add(oval, key SUBSEP ms[m], (ms[m] in f) ? f[ms[m]] : "NA")
    if (("srv_peak_kb" in f) && f["srv_peak_kb"] + 0 > opeak[key]) opeak[key] = f["srv_peak_kb"] + 0
    oerrs[key] += f["errors"]
    if (f["verify"] != "ok" && f["verify"] != "NA") obad[key] = 1
    if (f["errors"] > 0) for (m in f) if (m ~ /^err_/) oekind[key] = oekind[key] " " m "=" f[m]
}
function om(key, m,    v) { v = oval[key SUBSEP m]; return v ~ /NA/ ? "NA" : median(v) }
function once_table(    i, key, kk) {
    if (onkeys == 0) return
    print ""
    print "### Scenarios run once after the rounds"
    print ""
    printf "%-14s %-9s %5s %4s %4s %9s %10s %9s %9s %9s %9s %6s %6s %4s %4s %7s %7s\n", "scenario", "workload", "conns", "pipe", "runs", "store", "ops/s", "p50_us", "p99_us", "p99.9_us", "max_us", "errors", "verify", "srv%", "cli%", "peak_MB", "anon_MB"
    for (i = 1; i <= onkeys; i++) {
        key = oorder[i]
        split(key, kk, SUBSEP)
        printf "%-14s %-9s %5s %4s %4d %9s %10.0f %9s %9s %9s %9s %6d %6s %4s %4s %7.1f %7s\n", kk[1], kk[2], kk[3], kk[4], ocnt[key], ostore[key], om(key, "ops_per_s"), n0(om(key, "p50_us")), n0(om(key, "p99_us")), n0(om(key, "p999_us")), n0(om(key, "max_us")), oerrs[key], (key in obad) ? "FAIL" : "ok", n0(om(key, "srv_cpu")), n0(om(key, "client_cpu")), opeak[key] / 1024, mb(om(key, "srv_anon_kb"))
        if (key in oekind) printf "%14s   errors:%s\n", "", oekind[key]
    }
}

BEGIN {
    if (mixconns == "") mixconns = 100
    if (baseline != "") {
        while ((getline line < baseline) > 0) load("base", line)
        close(baseline)
        ratios_of("base")
    }
}
{ load("", $0) }
END {
    ratios_of("")
    if (nkeys[""] > 0) {
        comparison()
        mixed_line()
        goals()
        detail()
        machine()
    }
    once_table()
}

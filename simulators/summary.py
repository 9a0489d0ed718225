"""What the demo prints at the end (`python -m simulators summary`): what a simulator run sent
(its ledger) and the customer segments the platform found (ClickHouse ml.*_latest, read-only user),
each segment's churn rate against the simulator's hidden ground truth and its ratio to the overall rate;
then the churn model's latest scores (ml.churn_scores_latest): risk bands, revenue at risk, and the
customers most at risk with their reasons.
"""
from __future__ import annotations

from simulators import pipeline


def collect(settings, run_id: str | None = None) -> dict:
    from platform_common import clients

    runs = [run_id] if run_id else [r for r in pipeline.default_runs(settings) if "-events-" in r or "-import-" in r]
    events = pipeline.read_summary(settings, runs[0]) if runs else None
    ch = clients.clickhouse(settings, settings.clickhouse_bi_user, settings.clickhouse_bi_password)
    latest = ch.query("SELECT run_id, snapshot_date, customers, k, silhouette, overall_churn_rate "
                      "FROM ml.segmentation_runs FINAL ORDER BY run_id DESC LIMIT 1").result_rows
    segments = ch.query("SELECT segment_id, segment_name, size, share, churn_rate FROM ml.segment_profiles_latest "
                        "ORDER BY segment_id").result_rows
    run = dict(zip(("run_id", "snapshot_date", "customers", "k", "silhouette", "overall_churn_rate"), latest[0])) \
        if latest else None
    scoring = ch.query("SELECT run_id, customers, model_name, model_version, mean_p_churn, revenue_at_risk "
                       "FROM ml.churn_scoring_runs FINAL ORDER BY run_id DESC LIMIT 1").result_rows
    bands = ch.query("SELECT risk_band, count(), sum(revenue_at_risk) FROM ml.churn_scores_latest GROUP BY risk_band "
                     "ORDER BY min(p_churn)").result_rows
    top = ch.query("SELECT customer_id, p_churn, revenue_at_risk, next_best_action, "
                   "arrayStringConcat(arrayFilter(x -> x != '', [ifNull(reason_1, ''), ifNull(reason_2, ''), "
                   "ifNull(reason_3, '')]), '; ') FROM ml.churn_scores_latest "
                   "ORDER BY revenue_at_risk DESC, customer_id LIMIT 5").result_rows
    overall = run and run["overall_churn_rate"]
    return {
        "events": events,
        "segmentation": run,
        "segments": [{"segment_id": sid, "segment_name": name, "size": size, "share": share, "churn_rate": rate,
                      "ratio": round(rate / overall, 2) if rate is not None and overall else None}
                     for sid, name, size, share, rate in segments],
        "churn": None if not scoring else {
            **dict(zip(("run_id", "customers", "model", "version", "mean_p_churn", "revenue_at_risk"), scoring[0])),
            "bands": [{"band": b, "customers": n, "revenue_at_risk": r} for b, n, r in bands],
            "top": [{"customer_id": c, "p_churn": p, "revenue_at_risk": r, "action": a, "reasons": why}
                    for c, p, r, a, why in top]},
    }


def render(s: dict) -> str:
    lines = []
    ev = s["events"]
    if ev and ev.get("kind") == "import":
        w, p = ev["topics"]["web_events"], ev["topics"]["purchase_events"]
        lines.append(f"import {ev['run_id']} ({ev['config']['mapping']}): {ev['customers']['final_rows']:,} customers, "
                     f"web_events {w['valid']:,}, purchase_events {p['valid']:,} (revenue "
                     f"{ev['purchase_events']['revenue']}); {ev['rejected']:,} rows rejected")
    elif ev:
        cfg, w, p = ev["config"], ev["topics"]["web_events"], ev["topics"]["purchase_events"]
        lines.append(f"simulator run {ev['run_id']}: {cfg['customers']:,} customers (prefix {cfg['id_prefix']}, "
                     f"seed {cfg['seed']}), {cfg['days']:g} days from {cfg['start'][:10]}")
        lines.append(f"  events sent {ev['messages']:,}: web_events {w['valid']:,} valid, purchase_events "
                     f"{p['valid']:,} valid ({ev['purchase_events']['orders']:,} orders, revenue "
                     f"{ev['purchase_events']['revenue']}); {w['duplicates'] + p['duplicates']:,} duplicates, "
                     f"{w['malformed'] + p['malformed']:,} malformed")
    else:
        lines.append("no simulator run found (make generate_all)")
    run = s["segmentation"]
    if not run:
        lines.append("no segmentation run in ClickHouse ml.segmentation_runs yet (make batch)")
        return "\n".join(lines)
    overall = run["overall_churn_rate"]
    lines.append(f"segmentation run {run['run_id']}: {run['customers']:,} customers, snapshot {run['snapshot_date']}, "
                 f"k={run['k']}, silhouette {run['silhouette']:.3f}, overall churn "
                 + (f"{overall:.1%}" if overall is not None else "n/a (no ground truth)"))
    lines.append(f"  {'id':>2}  {'segment':<22}{'customers':>10}{'share':>8}{'churn':>8}{'× overall':>11}")
    for seg in s["segments"]:
        churn = "" if seg["churn_rate"] is None else f"{seg['churn_rate']:.1%}"
        ratio = "" if seg["ratio"] is None else f"{seg['ratio']:.2f}"
        lines.append(f"  {seg['segment_id']:>2}  {seg['segment_name']:<22}{seg['size']:>10,}{seg['share']:>8.1%}"
                     f"{churn:>8}{ratio:>11}")
    lines += _churn_lines(s.get("churn"))
    return "\n".join(lines)


def _churn_lines(churn: dict | None) -> list[str]:
    if not churn:
        return ["no churn scores in ClickHouse ml.churn_scores_latest yet (the pipeline's score_churn task)"]
    lines = [(f"churn scores {churn['run_id']}: {churn['customers']:,} customers scored by {churn['model']} "
              f"v{churn['version']} (@champion), mean p(churn) {churn['mean_p_churn']:.1%} over 30 days, "
              f"expected revenue at risk {churn['revenue_at_risk']:,.0f}"),
             f"  {'risk band':<12}{'customers':>10}{'revenue at risk':>17}"]
    lines += [f"  {b['band']:<12}{b['customers']:>10,}{b['revenue_at_risk']:>17,.0f}" for b in churn["bands"]]
    lines.append("  most revenue at risk:")
    lines += [f"    {t['customer_id']}  p {t['p_churn']:.0%}  {t['revenue_at_risk']:,.0f} at risk  → {t['action']}"
              f"  ({t['reasons'] or 'no reason pushes toward churn'})" for t in churn["top"]]
    return lines

package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strconv"
	"strings"
)

// chartPath is where the chart of a report goes: beside its JSON, with
// .svg for .json (or .svg added).
func chartPath(jsonPath string) string {
	return strings.TrimSuffix(jsonPath, ".json") + ".svg"
}

// spread is the lowest and highest of a measure's pair ratios (each aidb
// run over the baseline run of its pair).
func spread(m Measure) (lo, hi float64) {
	lo, hi = m.Ratio, m.Ratio
	for i := range min(len(m.AidbRuns), len(m.BaselineRuns)) {
		if m.BaselineRuns[i] <= 0 {
			continue
		}
		r := m.AidbRuns[i] / m.BaselineRuns[i]
		lo, hi = math.Min(lo, r), math.Max(hi, r)
	}
	return lo, hi
}

// chart draws rep's ratios as an SVG: one bar per measure (the ratio of
// the medians), a whisker from its lowest to its highest pair ratio, a
// tick at its target, and the line at 1 (as fast as the baseline). Bars
// over their target are drawn in red.
func chart(rep Report) string {
	const (
		left, right, top, row, bar = 250, 60, 40, 26, 14
		width                      = 900
	)
	scale := 1.5
	for _, m := range rep.Measures {
		_, hi := spread(m)
		scale = math.Max(scale, math.Max(hi, m.Target))
	}
	scale = math.Ceil(scale*4) / 4
	plot := float64(width - left - right)
	x := func(r float64) float64 { return left + plot*r/scale }
	height := top + row*len(rep.Measures) + 40

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14">aidb / baseline (median of %s; lower is faster), size %s, %s</text>`+"\n",
		pairsLabel(rep), human(rep.SizeBytes), html.EscapeString(rep.Machine))
	for t := 0.0; t <= scale+1e-9; t += tickStep(scale) {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x(t), top-6, x(t), height-34)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", x(t), height-20, strconv.FormatFloat(t, 'f', -1, 64))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333" stroke-dasharray="4 3"/>`+"\n", x(1), top-6, x(1), height-34)
	for i, m := range rep.Measures {
		y := top + i*row
		color := "#4a7bd0"
		if m.Target > 0 && m.Ratio > m.Target {
			color = "#d04a4a"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+bar-2, html.EscapeString(m.Name))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %.2f s / %.2f s = %.2f</title></rect>`+"\n",
			left, y, x(m.Ratio)-left, bar, color, html.EscapeString(m.Name), m.AidbS, m.BaselineS, m.Ratio)
		lo, hi := spread(m)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#222"/>`+"\n", x(lo), y+bar/2, x(hi), y+bar/2)
		if m.Target > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#111" stroke-width="2"/>`+"\n", x(m.Target), y-2, x(m.Target), y+bar+2)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#333">%.2f</text>`+"\n", x(math.Max(hi, m.Ratio))+4, y+bar-2, m.Ratio)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// tickStep is the distance between the axis' ticks.
func tickStep(scale float64) float64 {
	if scale <= 2 {
		return 0.25
	}
	return 0.5
}

// pairsLabel says how many pairs the measures had ("3 pairs", "1–3 pairs").
func pairsLabel(rep Report) string {
	var ps []int
	for _, m := range rep.Measures {
		ps = append(ps, m.Pairs)
	}
	if len(ps) == 0 {
		return "0 pairs"
	}
	lo, hi := slices.Min(ps), slices.Max(ps)
	if lo == hi {
		return fmt.Sprintf("%d pairs", lo)
	}
	return fmt.Sprintf("%d–%d pairs", lo, hi)
}

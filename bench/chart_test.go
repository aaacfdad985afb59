package main

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestChartDrawsEachMeasureWithItsSpreadAndTarget(t *testing.T) {
	rep := Report{SizeBytes: 256 << 20, Machine: "linux/amd64 & co", Measures: []Measure{
		{Name: "restore", AidbS: 40, BaselineS: 100, Ratio: 0.4, Target: 0.8, Pairs: 3,
			AidbRuns: []float64{40, 38, 50}, BaselineRuns: []float64{100, 110, 90}},
		{Name: "verify_vs_tuned", AidbS: 30, BaselineS: 20, Ratio: 1.5, Target: 0.9, Pairs: 3,
			AidbRuns: []float64{30, 31, 29}, BaselineRuns: []float64{20, 21, 19}},
		{Name: "restore_vs_floor", AidbS: 30, BaselineS: 25, Ratio: 1.2, Pairs: 3},
	}}
	svg := chart(rep)
	var doc struct {
		Rects []struct {
			Fill  string `xml:"fill,attr"`
			Title string `xml:"title"`
		} `xml:"rect"`
	}
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Fatalf("not well-formed XML: %v\n%s", err, svg)
	}
	if len(doc.Rects) != 4 { // the background and one bar per measure
		t.Fatalf("rects = %d, want 4:\n%s", len(doc.Rects), svg)
	}
	if doc.Rects[1].Fill == doc.Rects[2].Fill {
		t.Errorf("a bar over its target is not told apart: %s and %s", doc.Rects[1].Fill, doc.Rects[2].Fill)
	}
	if !strings.Contains(doc.Rects[2].Title, "30.00 s / 20.00 s = 1.50") {
		t.Errorf("title %q", doc.Rects[2].Title)
	}
	lo, hi := spread(rep.Measures[0])
	if lo != 38.0/110 || hi != 50.0/90 {
		t.Errorf("spread = %v..%v, want the lowest and highest pair ratio", lo, hi)
	}
	if lo, hi := spread(rep.Measures[2]); lo != 1.2 || hi != 1.2 {
		t.Errorf("without runs the spread is the ratio: %v..%v", lo, hi)
	}
	if chartPath("out/bench.json") != "out/bench.svg" || chartPath("x") != "x.svg" {
		t.Error("chartPath")
	}
}

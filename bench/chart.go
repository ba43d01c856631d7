package main

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// palette colours the servers in their order: cmd/wsgi stands out, the
// Go ceiling is grey.
var palette = map[string]color.Color{
	"cmd/wsgi":            color.RGBA{R: 0x1f, G: 0x5f, B: 0xd0, A: 0xff},
	"cmd/wsgi -threads 1": color.RGBA{R: 0x7f, G: 0xb2, B: 0xf0, A: 0xff},
	"Go net/http":         color.RGBA{R: 0x90, G: 0x90, B: 0x90, A: 0xff},
	"gunicorn sync":       color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"gunicorn gthread":    color.RGBA{R: 0x98, G: 0xdf, B: 0x8a, A: 0xff},
	"uWSGI":               color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	"waitress":            color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	"mod_wsgi":            color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	"uvicorn":             color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
}

// groupedBars draws one group of bars per workload, one bar per server
// that ran it, from the bottom of a log-scaled Y axis (gonum's BarChart
// starts bars at 0, which a log scale cannot show).
type groupedBars struct {
	values [][]float64 // [workload][slot]; NaN: no bar
	colors [][]color.Color
}

func (g *groupedBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for w, vs := range g.values {
		n := len(vs)
		if n == 0 {
			continue
		}
		width := 0.84 / float64(n)
		for i, v := range vs {
			if math.IsNaN(v) || v <= 0 {
				continue
			}
			x0 := float64(w) - 0.42 + float64(i)*width
			x1 := x0 + width*0.92
			pts := []vg.Point{
				{X: trX(x0), Y: trY(p.Y.Min)}, {X: trX(x0), Y: trY(v)},
				{X: trX(x1), Y: trY(v)}, {X: trX(x1), Y: trY(p.Y.Min)},
			}
			c.FillPolygon(g.colors[w][i], c.ClipPolygonY(pts))
		}
	}
}

func (g *groupedBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	ymin, ymax = math.Inf(1), math.Inf(-1)
	for _, vs := range g.values {
		for _, v := range vs {
			if !math.IsNaN(v) && v > 0 {
				ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
			}
		}
	}
	if math.IsInf(ymin, 0) {
		ymin, ymax = 1, 10
	}
	return -0.5, float64(len(g.values)) - 0.5, ymin, ymax
}

// swatch is a legend entry's coloured square.
type swatch struct{ c color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.c, []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y},
		{X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y},
	})
}

// chart writes req/s per workload per server as grouped bars, log scale.
func chart(ss []*server, ws []*workload, res map[string]*result, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("req/s by workload (median of %d; wrk -c%d, servers on CPU %s, %d worker(s); log scale)",
		*flagReps, *flagConns, *flagServerCPU, max(*flagWorkers, 1))
	p.Title.TextStyle.Font.Size = 14
	p.Y.Label.Text = "requests per second"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Tick.Label.Font.Size = 11

	g := &groupedBars{}
	var labels []string
	used := map[string]bool{}
	for _, w := range ws {
		var vs []float64
		var cs []color.Color
		for _, s := range ss {
			if !s.serves(w) {
				continue
			}
			r := res[w.key+"/"+s.key]
			v := math.NaN()
			if r != nil && r.runs > 0 {
				v = r.rps
				used[s.key] = true
			}
			vs = append(vs, v)
			cs = append(cs, palette[s.key])
		}
		g.values = append(g.values, vs)
		g.colors = append(g.colors, cs)
		labels = append(labels, w.label)
	}
	p.Add(horizontalGrid{}, g)
	p.NominalX(labels...)
	p.X.Tick.Label.Font.Size = 11
	p.X.Tick.Label.Rotation = math.Pi / 9
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter

	_, _, ymin, ymax := g.DataRange()
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(ymin)))
	// Headroom above the bars for the legend.
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(ymax*4)))

	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.TextStyle.Font.Size = font.Length(11)
	p.Legend.ThumbnailWidth = 0.4 * vg.Centimeter
	for _, s := range ss {
		if used[s.key] {
			p.Legend.Add(s.key, swatch{palette[s.key]})
		}
	}
	return p.Save(15*vg.Inch, 6.5*vg.Inch, path)
}

// horizontalGrid draws light lines at the Y axis's major ticks.
type horizontalGrid struct{}

func (horizontalGrid) Plot(c draw.Canvas, p *plot.Plot) {
	_, trY := p.Transforms(&c)
	style := draw.LineStyle{Color: color.Gray{Y: 0xd8}, Width: vg.Points(0.5)}
	for _, t := range p.Y.Tick.Marker.Ticks(p.Y.Min, p.Y.Max) {
		if t.IsMinor() {
			continue
		}
		y := trY(t.Value)
		c.StrokeLine2(style, c.Min.X, y, c.Max.X, y)
	}
}

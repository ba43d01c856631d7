package cpython

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValuesRoundTrip(t *testing.T) {
	tests := []struct {
		in   any
		want any // what decoding the encoding gives
	}{
		{nil, nil},
		{true, true},
		{false, false},
		{42, int64(42)},
		{int8(-8), int64(-8)},
		{uint32(7), int64(7)},
		{uint64(math.MaxInt64), int64(math.MaxInt64)},
		{float32(1.5), 1.5},
		{math.Inf(-1), math.Inf(-1)},
		{"héllo", "héllo"},
		{"", ""},
		{Text("héllo"), "héllo"},
		{[]byte{0, 255}, []byte{0, 255}},
		{[]any{1, "a", nil}, []any{int64(1), "a", nil}},
		{[]string{"x", "y"}, []any{"x", "y"}},
		{[3]int{1, 2, 3}, []any{int64(1), int64(2), int64(3)}},
		{map[string]any{"b": 1, "a": []any{}}, map[string]any{"a": []any{}, "b": int64(1)}},
		{map[string]int{"n": 1}, map[string]any{"n": int64(1)}},
		{bigMap(12), bigMap(12)},
	}
	for _, tt := range tests {
		b, err := encodeValue(nil, tt.in, 0)
		require.NoError(t, err, "%#v", tt.in)
		got, rest, err := decodeValue(b, 0)
		require.NoError(t, err)
		assert.Empty(t, rest)
		assert.Equal(t, tt.want, got, "%#v", tt.in)
	}
}

// bigMap has more entries than encodeMap sorts on the stack.
func bigMap(n int) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[string(rune('a'+i))] = int64(i)
	}
	return m
}

// TestEncodeMapStable: a dict's encoding does not depend on Go's map
// order, small or large, map[string]any or another map type.
func TestEncodeMapStable(t *testing.T) {
	for _, n := range []int{3, 12} {
		ints := map[string]int{}
		for k, v := range bigMap(n) {
			ints[k] = int(v.(int64))
		}
		for _, m := range []any{bigMap(n), ints} {
			first, err := encodeValue(nil, m, 0)
			require.NoError(t, err)
			for range 20 {
				b, err := encodeValue(nil, m, 0)
				require.NoError(t, err)
				require.Equal(t, first, b, "%T of %d entries", m, n)
			}
		}
		// Both map types encode alike.
		a, err := encodeValue(nil, bigMap(n), 0)
		require.NoError(t, err)
		b, err := encodeValue(nil, ints, 0)
		require.NoError(t, err)
		require.Equal(t, a, b)
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, v := range []any{make(chan int), uint64(math.MaxUint64), map[int]int{1: 1}, struct{}{}, func() {}} {
		_, err := encodeValue(nil, v, 0)
		assert.Error(t, err, "%T", v)
	}
	deep := []any{}
	for range 100 {
		deep = []any{deep}
	}
	_, err := encodeValue(nil, deep, 0)
	assert.Error(t, err)
}

func TestDecodeArgs(t *testing.T) {
	b, err := encodeValue(nil, []any{"a"}, 0)
	require.NoError(t, err)
	b[0] = 't' // a tuple, as Python sends arguments
	args, err := decodeArgs(b)
	require.NoError(t, err)
	assert.Equal(t, []any{"a"}, args)
	_, err = decodeArgs(append(b, 'N'))
	assert.Error(t, err, "trailing bytes")
}

// FuzzDecodeValue: arbitrary bytes never panic or allocate without
// bound, and whatever decodes re-encodes stably.
func FuzzDecodeValue(f *testing.F) {
	for _, v := range []any{nil, 1, "s", []byte("b"), []any{1, []any{2}}, map[string]any{"k": 1.5}} {
		b, _ := encodeValue(nil, v, 0)
		f.Add(b)
	}
	f.Add([]byte("l\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, _, err := decodeValue(b, 0)
		if err != nil {
			return
		}
		enc, err := encodeValue(nil, v, 0)
		require.NoError(t, err)
		again, rest, err := decodeValue(enc, 0)
		require.NoError(t, err)
		assert.Empty(t, rest)
		// Compare encodings: NaN is not equal to itself.
		enc2, err := encodeValue(nil, again, 0)
		require.NoError(t, err)
		assert.Equal(t, enc, enc2)
	})
}

func TestEncoder(t *testing.T) {
	var e Encoder
	e.Dict(3)
	e.Str("a")
	e.List(2)
	e.Int(1)
	e.Bool(true)
	e.Str("b")
	e.Bytes("raw")
	e.Str("c")
	require.NoError(t, e.Value(map[string]any{"x": nil}))
	v, rest, err := decodeValue(e.B, 0)
	require.NoError(t, err)
	assert.Empty(t, rest)
	assert.Equal(t, map[string]any{"a": []any{int64(1), true}, "b": []byte("raw"), "c": map[string]any{"x": nil}}, v)
}

package cpython

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
)

// The gohost value format, shared with bridge.c:
//
//	'N' None | 'T' True | 'F' False | 'i' int64 | 'd' float64
//	's' u32 len, UTF-8 | 'b' u32 len, bytes | 'l' list / 't' tuple: u32 n, n values
//	'm' dict: u32 n, n (str key, value) pairs
//
// Integers are little-endian.

const maxDepth = 64

var errMalformed = errors.New("gohost: malformed value")

// decodeValue decodes one value from b and returns the rest of b.
// Python lists and tuples become []any, dicts map[string]any.
func decodeValue(b []byte, depth int) (any, []byte, error) {
	if len(b) == 0 || depth > maxDepth {
		return nil, nil, errMalformed
	}
	tag, b := b[0], b[1:]
	switch tag {
	case 'N':
		return nil, b, nil
	case 'T':
		return true, b, nil
	case 'F':
		return false, b, nil
	case 'i', 'd':
		if len(b) < 8 {
			return nil, nil, errMalformed
		}
		u := binary.LittleEndian.Uint64(b)
		if tag == 'i' {
			return int64(u), b[8:], nil
		}
		return math.Float64frombits(u), b[8:], nil
	case 's', 'b':
		if len(b) < 4 {
			return nil, nil, errMalformed
		}
		n := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if uint64(len(b)) < uint64(n) {
			return nil, nil, errMalformed
		}
		if tag == 's' {
			return string(b[:n]), b[n:], nil
		}
		return append([]byte(nil), b[:n]...), b[n:], nil
	case 'l', 't', 'm':
		if len(b) < 4 {
			return nil, nil, errMalformed
		}
		n := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if uint64(len(b)) < uint64(n) { // every item takes at least a byte
			return nil, nil, errMalformed
		}
		if tag == 'm' {
			m := make(map[string]any, n)
			for range n {
				k, rest, err := decodeValue(b, depth+1)
				if err != nil {
					return nil, nil, err
				}
				ks, ok := k.(string)
				if !ok {
					return nil, nil, errMalformed
				}
				var v any
				if v, b, err = decodeValue(rest, depth+1); err != nil {
					return nil, nil, err
				}
				m[ks] = v
			}
			return m, b, nil
		}
		l := make([]any, n)
		for i := range l {
			var err error
			if l[i], b, err = decodeValue(b, depth+1); err != nil {
				return nil, nil, err
			}
		}
		return l, b, nil
	}
	return nil, nil, errMalformed
}

// decodeArgs decodes the argument tuple of a gohost call.
func decodeArgs(b []byte) ([]any, error) {
	v, rest, err := decodeValue(b, 0)
	if err != nil {
		return nil, err
	}
	args, ok := v.([]any)
	if !ok || len(rest) != 0 || b[0] != 't' {
		return nil, errMalformed
	}
	return args, nil
}

// encodeValue appends the encoding of v. It accepts nil, bool, every
// integer and float type, string, []byte, and slices, arrays and
// string-keyed maps of those (through reflection for types other than
// []any and map[string]any).
func encodeValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errors.New("gohost: value nested too deeply")
	}
	switch x := v.(type) {
	case nil:
		return append(b, 'N'), nil
	case bool:
		if x {
			return append(b, 'T'), nil
		}
		return append(b, 'F'), nil
	case int:
		return appendInt(b, int64(x)), nil
	case int8:
		return appendInt(b, int64(x)), nil
	case int16:
		return appendInt(b, int64(x)), nil
	case int32:
		return appendInt(b, int64(x)), nil
	case int64:
		return appendInt(b, x), nil
	case uint:
		return appendUint(b, uint64(x))
	case uint8:
		return appendInt(b, int64(x)), nil
	case uint16:
		return appendInt(b, int64(x)), nil
	case uint32:
		return appendInt(b, int64(x)), nil
	case uint64:
		return appendUint(b, x)
	case float32:
		return appendFloat(b, float64(x)), nil
	case float64:
		return appendFloat(b, x), nil
	case string:
		return appendBytes(b, 's', x)
	case Text:
		return appendBytes(b, 's', x)
	case []byte:
		return appendBytes(b, 'b', x)
	case []any:
		b = appendLen(append(b, 'l'), len(x))
		for _, e := range x {
			var err error
			if b, err = encodeValue(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	case map[string]any:
		return encodeMap(b, x, depth)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		b = appendLen(append(b, 'l'), rv.Len())
		for i := range rv.Len() {
			var err error
			if b, err = encodeValue(b, rv.Index(i).Interface(), depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		m := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			m[it.Key().String()] = it.Value().Interface()
		}
		return encodeMap(b, m, depth)
	}
	return nil, fmt.Errorf("gohost: cannot pass a Go %T to Python", v)
}

// encodeMap writes a dict with its keys sorted, so the result is stable.
// The keys are sorted on the stack: an ASGI event's dict costs no heap
// allocation here.
func encodeMap(b []byte, m map[string]any, depth int) ([]byte, error) {
	var small [8]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = appendLen(append(b, 'm'), len(keys))
	for _, k := range keys {
		var err error
		if b, err = appendBytes(b, 's', k); err != nil {
			return nil, err
		}
		if b, err = encodeValue(b, m[k], depth+1); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func appendInt(b []byte, v int64) []byte {
	return binary.LittleEndian.AppendUint64(append(b, 'i'), uint64(v))
}

func appendUint(b []byte, v uint64) ([]byte, error) {
	if v > math.MaxInt64 {
		return nil, fmt.Errorf("gohost: %d does not fit Python's bridge (int64)", v)
	}
	return appendInt(b, int64(v)), nil
}

func appendFloat(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(append(b, 'd'), math.Float64bits(v))
}

func appendLen(b []byte, n int) []byte {
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}

// appendBytes writes a tagged string or bytes value; a string is not
// converted to bytes first.
func appendBytes[S ~string | ~[]byte](b []byte, tag byte, p S) ([]byte, error) {
	if uint64(len(p)) > math.MaxUint32 {
		return nil, errors.New("gohost: value too large")
	}
	return append(appendLen(append(b, tag), len(p)), p...), nil
}

// Text is UTF-8 text held in bytes: it reaches Python as a str, without
// the copy that converting it to a Go string would make. The bytes must
// stay unchanged until the call that passes them returns.
type Text []byte

// Encoder writes a value in the gohost format directly, without building
// maps (a dict's entry count comes first, so the caller counts).
type Encoder struct{ B []byte }

// Dict starts a dict of n entries: then n (Str key, value) pairs.
func (e *Encoder) Dict(n int) { e.B = appendLen(append(e.B, 'm'), n) }

// List starts a list of n values.
func (e *Encoder) List(n int) { e.B = appendLen(append(e.B, 'l'), n) }

// Known writes the known string id (the keys given to Initialize): C
// returns the same interned str for it every time, with no copy and its
// hash already computed.
func (e *Encoder) Known(id int) { e.B = appendLen(append(e.B, 'k'), id) }

// Str writes a str.
func (e *Encoder) Str(s string) {
	e.B = append(appendLen(append(e.B, 's'), len(s)), s...)
}

// Bytes writes bytes given as a string (no copy to []byte needed).
func (e *Encoder) Bytes(s string) {
	e.B = append(appendLen(append(e.B, 'b'), len(s)), s...)
}

// Int writes an int.
func (e *Encoder) Int(v int64) { e.B = appendInt(e.B, v) }

// Bool writes a bool.
func (e *Encoder) Bool(v bool) {
	if v {
		e.B = append(e.B, 'T')
	} else {
		e.B = append(e.B, 'F')
	}
}

// Value writes any value encodeValue accepts.
func (e *Encoder) Value(v any) error {
	b, err := encodeValue(e.B, v, 0)
	if err != nil {
		return err
	}
	e.B = b
	return nil
}

// Encode encodes one value.
func Encode(v any) ([]byte, error) { return encodeValue(nil, v, 0) }

// UnpackFields splits the [u32 len][bytes]... format the C side packs
// start_response's and http.response.start's strings in, appending them to
// dst (substrings of packed: no copies). It returns what could not be
// read, "" when the whole buffer was well formed.
func UnpackFields(packed string, dst []string) (fields []string, rest string) {
	for len(packed) >= 4 {
		n := int(uint32(packed[0]) | uint32(packed[1])<<8 | uint32(packed[2])<<16 | uint32(packed[3])<<24)
		if n > len(packed)-4 {
			break
		}
		dst = append(dst, packed[4:4+n])
		packed = packed[4+n:]
	}
	return dst, packed
}

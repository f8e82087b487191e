package torchsave

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"

	"madclip/torch/safetensors"
)

// The values the machine builds.
type (
	dict struct {
		keys []any
		vals map[any]any
	}
	list   struct{ items []any }
	tuple  []any
	global struct{ module, name string }
	mark   struct{}
	// opaque stands, in a storage scan, for a global madclip does not
	// build (a TorchScript module's class) and for what it would make.
	opaque struct{ name string }
)

func newDict() *dict { return &dict{vals: map[any]any{}} }

func (d *dict) set(k, v any) error {
	switch k.(type) {
	case string, int64, bool, nil, float64:
	default:
		return fmt.Errorf("dict key of type %T", k)
	}
	if _, ok := d.vals[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.vals[k] = v
	return nil
}

// storageTypes are the storage classes a persistent id may name.
var storageTypes = map[string]safetensors.DType{
	"FloatStorage": safetensors.F32, "HalfStorage": safetensors.F16, "BFloat16Storage": safetensors.BF16,
	"DoubleStorage": safetensors.F64, "LongStorage": safetensors.I64, "IntStorage": safetensors.I32,
	"ByteStorage": safetensors.U8, "BoolStorage": safetensors.Bool,
}

// allowed are the only globals a file may name; anything else (a function
// to call, a class to build) is refused before it could matter.
var allowed = map[string]bool{
	"collections.OrderedDict":                    true,
	"torch._utils._rebuild_tensor_v2":            true,
	"torch._utils._rebuild_parameter":            true,
	"torch._utils._rebuild_parameter_with_state": true,
	"torch.jit._pickle.restore_type_tag":         true,
}

func init() {
	for n := range storageTypes {
		allowed["torch."+n] = true
	}
}

type machine struct {
	data  []byte
	pos   int
	stack []any
	marks []int
	memo  map[int64]any
	// values counts the values pushed, marks set and memo entries made: a
	// pickle of a few kilobytes could otherwise build millions of dicts.
	values int
	// scan makes any global an opaque value instead of an error (nothing
	// is ever called): storageScan reads a TorchScript module's pickle for
	// its storages alone.
	scan bool
	// storages are the persistent ids read, in order.
	storages []*tensorRef
}

// maxValues bounds the values a pickle may build: a state dict of CLIP
// ViT-L/14 builds some tens of thousands.
const maxValues = 1 << 22

var errTruncated = errors.New("the pickle ends early")

// unpickle runs the pickle data on a machine that only rebuilds data.
func unpickle(data []byte) (any, error) { return unpickleAtMost(data, maxValues) }

// unpickleAtMost is unpickle building at most limit values.
func unpickleAtMost(data []byte, limit int) (any, error) {
	_, v, err := run(&machine{data: data, memo: map[int64]any{}}, limit)
	return v, err
}

// storageScan reads a pickle that may build objects madclip does not (a
// TorchScript module's) for the storages it names, calling nothing.
func storageScan(data []byte) ([]*tensorRef, error) {
	m, _, err := run(&machine{data: data, memo: map[int64]any{}, scan: true}, maxValues)
	if err != nil {
		return nil, err
	}
	return m.storages, nil
}

// run runs the machine to the pickle's STOP and returns it with the value
// built.
func run(m *machine, limit int) (*machine, any, error) {
	for {
		if m.pos >= len(m.data) {
			return nil, nil, errTruncated
		}
		op := m.data[m.pos]
		m.pos++
		if op == '.' { // STOP
			if len(m.stack) != 1 {
				return nil, nil, fmt.Errorf("%d values left at the end", len(m.stack))
			}
			return m, m.stack[0], nil
		}
		if err := m.step(op); err != nil {
			return nil, nil, fmt.Errorf("at byte %d (opcode 0x%02x): %w", m.pos-1, op, err)
		}
		if m.values > limit {
			return nil, nil, fmt.Errorf("more than %d values built by byte %d: not a file of tensors (a pickle bomb?)", limit, m.pos)
		}
	}
}

func (m *machine) take(n int) ([]byte, error) {
	if n < 0 || m.pos+n > len(m.data) {
		return nil, errTruncated
	}
	b := m.data[m.pos : m.pos+n]
	m.pos += n
	return b, nil
}

func (m *machine) line() (string, error) {
	for i := m.pos; i < len(m.data); i++ {
		if m.data[i] == '\n' {
			s := string(m.data[m.pos:i])
			m.pos = i + 1
			return s, nil
		}
	}
	return "", errTruncated
}

func (m *machine) push(v any) {
	m.values++
	m.stack = append(m.stack, v)
}

func (m *machine) pop() (any, error) {
	if len(m.stack) == 0 || (len(m.marks) > 0 && len(m.stack) <= m.marks[len(m.marks)-1]) {
		return nil, errors.New("stack underflow")
	}
	v := m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
	return v, nil
}

func (m *machine) top() (any, error) {
	if len(m.stack) == 0 {
		return nil, errors.New("stack underflow")
	}
	return m.stack[len(m.stack)-1], nil
}

// popMark returns the values pushed since the last MARK.
func (m *machine) popMark() ([]any, error) {
	if len(m.marks) == 0 {
		return nil, errors.New("no MARK")
	}
	k := m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	items := append([]any(nil), m.stack[k:]...)
	m.stack = m.stack[:k]
	return items, nil
}

func (m *machine) uint(n int) (uint64, error) {
	b, err := m.take(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (m *machine) step(op byte) error {
	switch op {
	case 0x80, 0x95, '}', ']', ')', '(', 'N', 0x88, 0x89:
		return m.simple(op)
	case 'K', 'M', 'J', 0x8a, 'G':
		return m.number(op)
	case 'X', 0x8c, 0x8d, 'T', 'U', 'C', 'B':
		return m.text(op)
	case 'q', 'r', 0x94, 'h', 'j':
		return m.memoOp(op)
	case 't', 0x85, 0x86, 0x87:
		return m.tupleOp(op)
	case 'c', 0x93, 'Q', 'R', 0x81, 'b':
		return m.objectOp(op)
	case 's', 'u', 'a', 'e':
		return m.containerOp(op)
	}
	return fmt.Errorf("pickle opcode 0x%02x is not one torch.save writes for tensors", op)
}

// simple handles the opcodes without operands beyond their own bytes:
// PROTO, FRAME, the empty containers, MARK, None, True, False.
func (m *machine) simple(op byte) error {
	switch op {
	case 0x80: // PROTO
		_, err := m.take(1)
		return err
	case 0x95: // FRAME
		_, err := m.take(8)
		return err
	case '}':
		m.push(newDict())
	case ']':
		m.push(&list{})
	case ')':
		m.push(tuple{})
	case '(':
		m.marks = append(m.marks, len(m.stack))
		m.values++ // a mark costs memory as a value does
	case 'N':
		m.push(nil)
	case 0x88:
		m.push(true)
	case 0x89:
		m.push(false)
	}
	return nil
}

// number handles BININT1, BININT2, BININT, LONG1 and BINFLOAT.
func (m *machine) number(op byte) error {
	switch op {
	case 'K', 'M':
		n := 1
		if op == 'M' {
			n = 2
		}
		v, err := m.uint(n)
		if err != nil {
			return err
		}
		m.push(int64(v))
	case 'J':
		v, err := m.uint(4)
		if err != nil {
			return err
		}
		m.push(int64(int32(uint32(v))))
	case 0x8a:
		n, err := m.uint(1)
		if err != nil {
			return err
		}
		b, err := m.take(int(n))
		if err != nil {
			return err
		}
		v, err := long(b)
		if err != nil {
			return err
		}
		m.push(v)
	case 'G':
		b, err := m.take(8)
		if err != nil {
			return err
		}
		m.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	}
	return nil
}

// text handles the string and bytes opcodes (all pushed as Go strings).
func (m *machine) text(op byte) error {
	n := map[byte]int{'X': 4, 0x8c: 1, 0x8d: 8, 'T': 4, 'U': 1, 'C': 1, 'B': 4}[op]
	l, err := m.uint(n)
	if err != nil {
		return err
	}
	if l > uint64(len(m.data)) {
		return errTruncated
	}
	b, err := m.take(int(l))
	if err != nil {
		return err
	}
	m.push(string(b))
	return nil
}

// memoOp handles BINPUT, LONG_BINPUT, MEMOIZE, BINGET and LONG_BINGET.
func (m *machine) memoOp(op byte) error {
	switch op {
	case 'q', 'r', 0x94:
		v, err := m.top()
		if err != nil {
			return err
		}
		var idx uint64
		switch op {
		case 'q':
			idx, err = m.uint(1)
		case 'r':
			idx, err = m.uint(4)
		default:
			idx = uint64(len(m.memo))
		}
		if err != nil {
			return err
		}
		m.memo[int64(idx)] = v
		m.values++
		return nil
	}
	n := 1
	if op == 'j' {
		n = 4
	}
	idx, err := m.uint(n)
	if err != nil {
		return err
	}
	v, ok := m.memo[int64(idx)]
	if !ok {
		return fmt.Errorf("memo %d is empty", idx)
	}
	m.push(v)
	return nil
}

// tupleOp handles TUPLE (from the last MARK) and TUPLE1..3.
func (m *machine) tupleOp(op byte) error {
	if op == 't' {
		items, err := m.popMark()
		if err != nil {
			return err
		}
		m.push(tuple(items))
		return nil
	}
	n := int(op-0x85) + 1
	items := make(tuple, n)
	for i := n - 1; i >= 0; i-- {
		v, err := m.pop()
		if err != nil {
			return err
		}
		items[i] = v
	}
	m.push(items)
	return nil
}

// objectOp handles GLOBAL, STACK_GLOBAL, BINPERSID, REDUCE, NEWOBJ and
// BUILD: only the allowed globals, applied by reduce.
func (m *machine) objectOp(op byte) error {
	switch op {
	case 'c':
		mod, err := m.line()
		if err != nil {
			return err
		}
		name, err := m.line()
		if err != nil {
			return err
		}
		return m.pushGlobal(mod, name)
	case 0x93:
		name, err := m.pop()
		if err != nil {
			return err
		}
		mod, err := m.pop()
		if err != nil {
			return err
		}
		ms, ok1 := mod.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return errors.New("STACK_GLOBAL without strings")
		}
		return m.pushGlobal(ms, ns)
	case 'Q':
		pid, err := m.pop()
		if err != nil {
			return err
		}
		s, err := storage(pid)
		if err != nil {
			return err
		}
		m.storages = append(m.storages, s)
		m.push(s)
	case 'R', 0x81: // REDUCE; NEWOBJ (cls.__new__(cls, *args), only an OrderedDict)
		args, err := m.pop()
		if err != nil {
			return err
		}
		fn, err := m.pop()
		if err != nil {
			return err
		}
		if _, ok := fn.(opaque); ok {
			m.push(fn) // an instance of a class of the scan's: opaque too
			return nil
		}
		v, err := reduce(fn, args)
		if err != nil {
			return err
		}
		m.push(v)
	case 'b': // an object's state (an OrderedDict's _metadata): ignored
		if _, err := m.pop(); err != nil {
			return err
		}
		_, err := m.top()
		return err
	}
	return nil
}

// containerOp handles SETITEM, SETITEMS, APPEND and APPENDS.
func (m *machine) containerOp(op byte) error {
	var items []any
	var err error
	switch op {
	case 's', 'a':
		n := map[byte]int{'s': 2, 'a': 1}[op]
		items = make([]any, n)
		for i := n - 1; i >= 0 && err == nil; i-- {
			items[i], err = m.pop()
		}
	default:
		items, err = m.popMark()
	}
	if err != nil {
		return err
	}
	target, err := m.top()
	if err != nil {
		return err
	}
	if op == 'a' || op == 'e' {
		l, ok := target.(*list)
		if !ok {
			return fmt.Errorf("APPEND on %T", target)
		}
		l.items = append(l.items, items...)
		return nil
	}
	d, ok := target.(*dict)
	if !ok || len(items)%2 != 0 {
		return fmt.Errorf("SETITEM on %T with %d values", target, len(items))
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.set(items[i], items[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func (m *machine) pushGlobal(mod, name string) error {
	full := mod + "." + name
	if !allowed[full] && m.scan {
		m.push(opaque{full})
		return nil
	}
	if !allowed[full] {
		return fmt.Errorf("refusing the global %s: only tensors and dicts are read, no pickle code is run", full)
	}
	m.push(global{mod, name})
	return nil
}

// long decodes a little-endian two's-complement integer of LONG1.
func long(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	v := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	if !v.IsInt64() {
		return 0, errors.New("integer out of range")
	}
	return v.Int64(), nil
}

// storage reads a persistent id ("storage", StorageType, key, location, numel).
func storage(pid any) (*tensorRef, error) {
	t, ok := pid.(tuple)
	if !ok || len(t) != 5 || t[0] != "storage" {
		return nil, fmt.Errorf("persistent id %v is not a storage", pid)
	}
	g, ok := t[1].(global)
	dt, known := storageTypes[g.name]
	if !ok || !known {
		return nil, fmt.Errorf("storage of type %v is not read", t[1])
	}
	key, ok1 := t[2].(string)
	numel, ok2 := t[4].(int64)
	if !ok1 || !ok2 || numel < 0 || strings.Contains(key, "/") || strings.Contains(key, "..") {
		return nil, fmt.Errorf("persistent id %v", pid)
	}
	return &tensorRef{key: key, dtype: dt, numel: numel}, nil
}

// reduce applies one of the allowed globals to its arguments.
func reduce(fn, args any) (any, error) {
	g, ok := fn.(global)
	a, ok2 := args.(tuple)
	if !ok || !ok2 {
		return nil, fmt.Errorf("REDUCE of %T with %T", fn, args)
	}
	switch g.module + "." + g.name {
	case "collections.OrderedDict":
		if len(a) != 0 {
			return nil, errors.New("OrderedDict with arguments")
		}
		return newDict(), nil
	case "torch._utils._rebuild_tensor_v2":
		if len(a) < 4 {
			return nil, errors.New("_rebuild_tensor_v2 with too few arguments")
		}
		s, ok := a[0].(*tensorRef)
		off, ok1 := a[1].(int64)
		size, err1 := ints(a[2])
		stride, err2 := ints(a[3])
		switch {
		case !ok:
			return nil, fmt.Errorf("a tensor whose storage is %s", pickleKind(a[0]))
		case !ok1:
			return nil, fmt.Errorf("a tensor whose offset is %s, not an integer", pickleKind(a[1]))
		case err1 != nil:
			return nil, fmt.Errorf("a tensor's size: %w", err1)
		case err2 != nil:
			return nil, fmt.Errorf("a tensor's stride: %w", err2)
		}
		r := *s
		r.offset, r.size, r.stride = off, size, stride
		return &r, nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		if len(a) < 1 {
			return nil, errors.New("_rebuild_parameter without data")
		}
		if _, ok := a[0].(*tensorRef); !ok {
			return nil, fmt.Errorf("_rebuild_parameter of %T", a[0])
		}
		return a[0], nil
	case "torch.jit._pickle.restore_type_tag":
		if len(a) < 1 {
			return nil, errors.New("restore_type_tag without a value")
		}
		return a[0], nil
	}
	return nil, fmt.Errorf("%s.%s cannot be called", g.module, g.name)
}

func ints(v any) ([]int64, error) {
	t, ok := v.(tuple)
	if !ok {
		return nil, fmt.Errorf("%s, not a tuple of integers", pickleKind(v))
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok {
			return nil, fmt.Errorf("%s among its integers", pickleKind(x))
		}
		out[i] = n
	}
	return out, nil
}

// pickleKind names a value the machine built in Python's words, for
// messages.
func pickleKind(v any) string {
	switch v.(type) {
	case *dict:
		return "a dict"
	case *list:
		return "a list"
	case tuple:
		return "a tuple"
	case string:
		return "a str"
	case int64, *big.Int:
		return "an int"
	case float64:
		return "a float"
	case bool:
		return "a bool"
	case nil:
		return "None"
	case *tensorRef:
		return "a tensor"
	}
	return "an object"
}

// millrace: calls the script's main with its arguments by name (see go.sh).
package inner

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// MillraceRun decodes each named argument into main's parameter type and calls main.
// An argument the run does not give is the parameter type's zero value.
func MillraceRun(params []string, args map[string]json.RawMessage) (interface{}, error) {
	function := reflect.ValueOf(main)
	kind := function.Type()
	if kind.NumIn() != len(params) {
		return nil, fmt.Errorf("main takes %d parameters, its signature names %d", kind.NumIn(), len(params))
	}
	in := make([]reflect.Value, len(params))
	for i, name := range params {
		value := reflect.New(kind.In(i))
		if raw, given := args[name]; given {
			if err := json.Unmarshal(raw, value.Interface()); err != nil {
				return nil, fmt.Errorf("argument %q does not fit %s: %v", name, kind.In(i), err)
			}
		}
		in[i] = value.Elem()
	}
	out := function.Call(in)
	if len(out) != 2 {
		return nil, fmt.Errorf("main must return (interface{}, error), it returns %d values", len(out))
	}
	if err, failed := out[1].Interface().(error); failed && err != nil {
		return nil, err
	}
	return out[0].Interface(), nil
}

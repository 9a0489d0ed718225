// A small clickhouse-go (v2, HTTP) client for the integration tests of the chDB-backed server.
//
//	goclient ADDR USER PASSWORD query SQL     -> {"columns": [{"name", "type"}], "rows": [[...], ...]}
//	goclient ADDR USER PASSWORD insert TABLE  -> {"inserted": N}; appends the fixed rows below in one
//	                                             batch (a Native INSERT body) to TABLE
//
// Values are printed with encoding/json as the driver returns them (time.Time keeps the column's
// time zone, decimals and UUIDs are strings), so the test sees exactly what clickhouse-go decoded.
// Errors go to stderr and exit with 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"reflect"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

func main() {
	if len(os.Args) != 6 {
		fail(fmt.Errorf("usage: goclient ADDR USER PASSWORD query SQL | insert TABLE"))
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol: clickhouse.HTTP,
		Addr:     []string{os.Args[1]},
		Auth:     clickhouse.Auth{Database: "default", Username: os.Args[2], Password: os.Args[3]},
	})
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	ctx := context.Background()
	var out any
	switch os.Args[4] {
	case "query":
		out, err = query(ctx, conn, os.Args[5])
	case "insert":
		out, err = insert(ctx, conn, os.Args[5])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[4])
	}
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

type column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func query(ctx context.Context, conn clickhouse.Conn, sql string) (any, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	columns := make([]column, len(types))
	for i, t := range types {
		columns[i] = column{t.Name(), t.DatabaseTypeName()}
	}
	result := [][]any{}
	for rows.Next() {
		ptrs := make([]any, len(types))
		for i, t := range types {
			ptrs[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]any, len(ptrs))
		for i, p := range ptrs {
			row[i] = reflect.ValueOf(p).Elem().Interface()
		}
		result = append(result, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return map[string]any{"columns": columns, "rows": result}, nil
}

// The table the test creates for `insert` (kept in step with test_go_client.py).
func insert(ctx context.Context, conn clickhouse.Conn, table string) (any, error) {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
	if err != nil {
		return nil, err
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return nil, err
	}
	n := 3
	for i := 0; i < n; i++ {
		var nullable *int32
		if i != 1 {
			v := int32(-i)
			nullable = &v
		}
		err := batch.Append(
			uint64(i),                 // id UInt64
			int8(-i),                  // i8 Int8
			uint32(4000000000+i),      // u32 UInt32
			big.NewInt(int64(i)-5),    // i128 Int128
			float32(i)+0.5,            // f32 Float32
			float64(i)/4,              // f64 Float64
			fmt.Sprintf("name-%d", i), // s String
			fmt.Sprintf("k%d", i%2),   // lc LowCardinality(String)
			"abc",                     // fs FixedString(3)
			time.Date(2024, 1, 2+i, 0, 0, 0, 0, time.UTC),                           // d Date
			time.Date(1950, 1, 2+i, 0, 0, 0, 0, time.UTC),                           // d32 Date32
			time.Date(2024, 3, 4, 5, 6, 7+i, 0, time.UTC),                           // dt DateTime('UTC')
			time.Date(2024, 3, 4, 5, 6, 7, i*1000000, berlin),                       // dt64 DateTime64(3, 'Europe/Berlin')
			uuid.MustParse(fmt.Sprintf("00000000-0000-0000-0000-00000000000%d", i)), // u UUID
			i%2 == 0,                          // b Bool
			nullable,                          // n Nullable(Int32)
			[]string{"x", fmt.Sprint(i)},      // a Array(String)
			map[string]uint64{"k": uint64(i)}, // m Map(String, UInt64)
			decimal.RequireFromString(fmt.Sprintf("%d.25", i)), // dec Decimal(10, 2)
			[]any{uint8(i), fmt.Sprint("t", i)},                // t Tuple(UInt8, String)
			"b",                                                // e Enum8('a' = 1, 'b' = 2)
		)
		if err != nil {
			return nil, err
		}
	}
	if err := batch.Send(); err != nil {
		return nil, err
	}
	return map[string]int{"inserted": n}, nil
}

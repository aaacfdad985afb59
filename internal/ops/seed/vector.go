package seed

import (
	"context"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// registerVector teaches conn pgvector's vector type, when the database has
// it, so that embeddings ([]float32) are written to a vector column through
// binary COPY as they are to a real[] one. pgx knows no extension type by
// itself, and COPY's binary format needs a codec for every column.
func registerVector(ctx context.Context, conn *pgx.Conn) error {
	var oid *uint32
	if err := conn.QueryRow(ctx, "SELECT to_regtype('vector')::oid").Scan(&oid); err != nil {
		return fmt.Errorf("look up the vector type: %w", err)
	}
	if oid != nil {
		conn.TypeMap().RegisterType(&pgtype.Type{Name: "vector", OID: *oid, Codec: vectorCodec{}})
	}
	return nil
}

// vectorCodec writes []float32 in pgvector's binary format (vector_recv):
// the dimension and a reserved word as 16-bit integers, then each element as
// a 32-bit float, all big-endian. Seeding only writes, so it scans nothing.
type vectorCodec struct{}

func (vectorCodec) FormatSupported(f int16) bool { return f == pgtype.BinaryFormatCode }
func (vectorCodec) PreferredFormat() int16       { return pgtype.BinaryFormatCode }

func (vectorCodec) PlanEncode(_ *pgtype.Map, _ uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.([]float32); ok && format == pgtype.BinaryFormatCode {
		return encodeVector{}
	}
	return nil
}

func (vectorCodec) PlanScan(*pgtype.Map, uint32, int16, any) pgtype.ScanPlan { return nil }

var errVectorScan = errors.New("seed: vector values are only written")

func (vectorCodec) DecodeDatabaseSQLValue(*pgtype.Map, uint32, int16, []byte) (driver.Value, error) {
	return nil, errVectorScan
}

func (vectorCodec) DecodeValue(*pgtype.Map, uint32, int16, []byte) (any, error) {
	return nil, errVectorScan
}

type encodeVector struct{}

func (encodeVector) Encode(value any, buf []byte) ([]byte, error) {
	v := value.([]float32)
	if v == nil {
		return nil, nil
	}
	if len(v) > math.MaxInt16 {
		return nil, fmt.Errorf("seed: a vector of %d dimensions is more than pgvector takes", len(v))
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(v)))
	buf = binary.BigEndian.AppendUint16(buf, 0)
	for _, x := range v {
		buf = binary.BigEndian.AppendUint32(buf, math.Float32bits(x))
	}
	return buf, nil
}

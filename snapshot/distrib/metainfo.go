package distrib

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// DefaultPieceLength suits snapshots of tens of MiB to a few GiB: 2048
// pieces for 512 MiB keeps the .torrent at ~40 KiB and a lost piece cheap.
const DefaultPieceLength = 256 << 10

// MaxTorrentBytes bounds a .torrent an edge accepts.
const MaxTorrentBytes = 4 << 20

// MakeTorrent hashes the file at path into a private single-file torrent
// announcing to announce, with webseed as its BEP 19 url-list entry.
func MakeTorrent(path string, pieceLength int64, announce, webseed string) (*metainfo.MetaInfo, error) {
	if pieceLength <= 0 {
		pieceLength = DefaultPieceLength
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	private := true
	info := metainfo.Info{Name: filepath.Base(path), Length: st.Size(), PieceLength: pieceLength, Private: &private}
	info.Pieces, err = metainfo.GeneratePieces(io.LimitReader(f, st.Size()), pieceLength, nil)
	if err != nil {
		return nil, fmt.Errorf("distrib: hashing %s: %w", path, err)
	}
	ib, err := bencode.Marshal(info)
	if err != nil {
		return nil, err
	}
	mi := &metainfo.MetaInfo{InfoBytes: ib, Announce: announce, CreatedBy: "adbuilder"}
	if webseed != "" {
		mi.UrlList = []string{webseed}
	}
	return mi, nil
}

// EncodeTorrent renders mi as .torrent bytes.
func EncodeTorrent(mi *metainfo.MetaInfo) ([]byte, error) {
	var b bytes.Buffer
	if err := mi.Write(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ParseTorrent decodes .torrent bytes and checks they describe one file of
// the expected name and size with the expected infohash (hex): the infohash
// comes from a signed manifest, so a matching .torrent is authentic.
func ParseTorrent(b []byte, infoHash, name string, size int64) (*metainfo.MetaInfo, error) {
	if len(b) > MaxTorrentBytes {
		return nil, fmt.Errorf("distrib: .torrent larger than %d bytes", MaxTorrentBytes)
	}
	mi, err := metainfo.Load(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("distrib: .torrent: %w", err)
	}
	if got := mi.HashInfoBytes().HexString(); got != infoHash {
		return nil, fmt.Errorf("distrib: .torrent infohash %s, the manifest says %s", got, infoHash)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, fmt.Errorf("distrib: .torrent info: %w", err)
	}
	switch {
	case len(info.Files) != 0:
		return nil, errors.New("distrib: .torrent has several files")
	case info.Name != name || info.Length != size:
		return nil, fmt.Errorf("distrib: .torrent describes %q (%d bytes), want %q (%d bytes)", info.Name, info.Length, name, size)
	}
	return mi, nil
}

#!/usr/bin/perl
# Writes a small MaxMind DB country database for tests:
#   127.0.0.0/8 -> NL, 192.0.2.0/24 -> FR (TEST-NET-1), ::1/128 -> DE
# usage: make_test_mmdb.pl OUT
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my %types = (country => 'map', iso_code => 'utf8_string');
my $tree = MaxMind::DB::Writer::Tree->new(
	ip_version            => 6,
	record_size           => 24,
	database_type         => 'shortd-test-country',
	languages             => ['en'],
	description           => { en => 'shortd test data' },
	map_key_type_callback => sub { $types{ $_[0] } },
	remove_reserved_networks => 0,
	alias_ipv6_to_ipv4    => 1,
);
$tree->insert_network('127.0.0.0/8',  { country => { iso_code => 'NL' } });
$tree->insert_network('192.0.2.0/24', { country => { iso_code => 'FR' } });
$tree->insert_network('::1/128',      { country => { iso_code => 'DE' } });
open my $fh, '>:raw', $ARGV[0] or die "cannot write $ARGV[0]: $!";
$tree->write_tree($fh);
close $fh;

pub mod bind9;

#ifndef SHORTD_VERSION_H
#define SHORTD_VERSION_H
#define SHORTD_VERSION "0.1.0"
#endif
